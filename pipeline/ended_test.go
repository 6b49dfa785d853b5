package pipeline_test

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// endlessStream is a ServerStream whose RecvMsg always yields a one-byte frame.
type endlessStream struct{ ctx context.Context }

func (s *endlessStream) Context() context.Context     { return s.ctx }
func (s *endlessStream) SetHeader(metadata.MD) error  { return nil }
func (s *endlessStream) SendHeader(metadata.MD) error { return nil }
func (s *endlessStream) SetTrailer(metadata.MD)       {}
func (s *endlessStream) SendMsg(any) error            { return nil }
func (s *endlessStream) RecvMsg(m any) error {
	m.(*rawcodec.Frame).Replace(rawcodec.FromBytes([]byte{1}).Data)
	return nil
}

// TestNoRequestHooksAfterEnd: a terminal whose request reader outlives the
// call (the route terminal's does, since grpc-go unblocks a server RecvMsg
// only when the stream closes) gets no more messages once the call ended,
// and the request hooks never run after OnResponseEnd.
func TestNoRequestHooksAfterEnd(t *testing.T) {
	var msgs, ends atomic.Int32
	f := &pipeline.Funcs{
		FilterName: "watch",
		RequestMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error {
			if ends.Load() > 0 {
				t.Error("request message hook ran after the end hook")
			}
			msgs.Add(1)
			return nil
		},
		ResponseEnd: func(context.Context, *pipeline.Call, *pipeline.End) { ends.Add(1) },
	}
	var leftover pipeline.ServerStream
	terminal := pipeline.HandlerFunc(func(_ *pipeline.Call, s pipeline.ServerStream) error {
		var fr rawcodec.Frame
		if err := s.RecvMsg(&fr); err != nil {
			return err
		}
		fr.Free()
		leftover = s
		return nil
	})
	chain, err := pipeline.Build([]pipeline.Filter{f}, terminal)
	if err != nil {
		t.Fatal(err)
	}
	if err := chain.Serve(&pipeline.Call{Method: "/a.B/C"}, &endlessStream{ctx: context.Background()}); err != nil {
		t.Fatal(err)
	}
	var fr rawcodec.Frame
	err = leftover.RecvMsg(&fr)
	if status.Code(err) != codes.Canceled {
		t.Errorf("RecvMsg after the call ended = %v, want Canceled", err)
	}
	if fr.Len() != 0 {
		t.Error("a frame was delivered after the call ended")
	}
	if msgs.Load() != 1 || ends.Load() != 1 {
		t.Errorf("message hook ran %d times, end hook %d; want 1 and 1", msgs.Load(), ends.Load())
	}
}

// TestTerminalPanicNotBlamedOnAround: a panic below an around filter is not
// logged as that filter's; it goes on to the server, which logs it once.
func TestTerminalPanicNotBlamedOnAround(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	logs := &logCapture{}
	around := pipeline.AroundFunc("wrapper", func(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
		return next.Serve(call, s)
	})
	client := chainProxy(t, addr, []pipeline.Filter{around}, func(*cluster.Cluster) pipeline.Handler {
		return pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
			panic(panicValue)
		})
	}, slog.New(logs))
	if err := runUnary(callCtx(t), client); status.Code(err) != codes.Internal {
		t.Fatalf("call: %v, want Internal", err)
	}
	panics := 0
	for _, r := range logs.snapshot() {
		if r.attrs["filter"] == "wrapper" {
			t.Errorf("the around filter was blamed: %v", r)
		}
		if r.attrs["panic"] == panicValue {
			panics++
		}
	}
	if panics != 1 {
		t.Errorf("panic logged %d times, want once", panics)
	}
}
