package server

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/pipeline"
)

// countingStream counts a call's messages and bytes each way as they pass
// the server stream, and carries the [pipeline.Counters] in its context,
// so that header-only filters report them when the call ends. It replaces a
// grpc stats handler, which made grpc-go build and time-stamp an event for
// every header, message and trailer of every call; this costs one
// allocation per call and two atomic adds per message.
type countingStream struct {
	grpc.ServerStream
	ctx context.Context
	c   pipeline.Counters
}

// withCounters wraps stream so that its messages are counted.
func withCounters(stream grpc.ServerStream) *countingStream {
	s := &countingStream{ServerStream: stream}
	s.ctx = pipeline.ContextWithCounters(stream.Context(), &s.c)
	return s
}

func (s *countingStream) Context() context.Context { return s.ctx }

func (s *countingStream) RecvMsg(m any) error {
	if err := s.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	s.c.RequestMessages.Add(1)
	s.c.RequestBytes.Add(int64(messageSize(m)))
	return nil
}

func (s *countingStream) SendMsg(m any) error {
	n := messageSize(m) // before sending: the codec empties a sent frame
	if err := s.ServerStream.SendMsg(m); err != nil {
		return err
	}
	s.c.ResponseMessages.Add(1)
	s.c.ResponseBytes.Add(int64(n))
	return nil
}

// messageSize is the uncompressed size of a message the server stream
// carried: a raw frame's length, or a message's encoded size for filters
// that send decoded messages.
func messageSize(m any) int {
	switch m := m.(type) {
	case interface{ Len() int }:
		return m.Len()
	case proto.Message:
		return proto.Size(m)
	}
	return 0
}

var _ grpc.ServerStream = (*countingStream)(nil)
