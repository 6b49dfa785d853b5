package server

import (
	"context"

	"google.golang.org/grpc/stats"

	"github.com/manifold-grpc/manifold/pipeline"
)

// countingHandler is a grpc stats handler that keeps each call's
// [pipeline.Counters] in its context, so that filters report messages and
// bytes without hooks on every message.
type countingHandler struct{}

func (countingHandler) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return pipeline.ContextWithCounters(ctx, new(pipeline.Counters))
}

func (countingHandler) HandleRPC(ctx context.Context, s stats.RPCStats) {
	c := pipeline.CountersFromContext(ctx)
	if c == nil {
		return
	}
	switch p := s.(type) {
	case *stats.InPayload:
		c.RequestMessages.Add(1)
		c.RequestBytes.Add(int64(p.Length))
	case *stats.OutPayload:
		c.ResponseMessages.Add(1)
		c.ResponseBytes.Add(int64(p.Length))
	}
}

func (countingHandler) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}

func (countingHandler) HandleConn(context.Context, stats.ConnStats) {}

var _ stats.Handler = countingHandler{}
