package server_test

import (
	"context"
	"io"
	"sync"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// countingFilter reads the counters when the call ends; it says so, so the
// server keeps them.
type countingFilter struct {
	end func(ctx context.Context, call *pipeline.Call, end *pipeline.End)
}

func (countingFilter) Name() string       { return "count" }
func (countingFilter) UsesCounters() bool { return true }
func (f countingFilter) OnResponseEnd(ctx context.Context, call *pipeline.Call, end *pipeline.End) {
	f.end(ctx, call, end)
}

// TestCounters: the server counts each call's messages and bytes each way,
// where a header-only filter can read them when the call ends, once a
// filter in the chain asks for them; otherwise it keeps none (no stats
// handler on the hot path).
func TestCounters(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	var mu sync.Mutex
	var got [4]int64
	count := countingFilter{func(ctx context.Context, _ *pipeline.Call, _ *pipeline.End) {
		c := pipeline.CountersFromContext(ctx)
		if c == nil {
			t.Error("no counters in the call's context")
			return
		}
		mu.Lock()
		got = [4]int64{c.RequestMessages.Load(), c.RequestBytes.Load(), c.ResponseMessages.Load(), c.ResponseBytes.Load()}
		mu.Unlock()
	}}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{count}})
	s, err := env.Client.StreamingOutputCall(context.Background(), &testgrpc.StreamingOutputCallRequest{
		ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 20}, {Size: 30}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := s.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	// One request; three responses of 10, 20 and 30 payload bytes, each
	// wrapped in two length-delimited fields of 2 bytes of framing each.
	if got[0] != 1 || got[1] == 0 || got[2] != 3 || got[3] != 10+20+30+6+6 {
		t.Errorf("counters = %v, want [1 >0 3 72]", got)
	}
}

// TestNoCountersUnlessAsked: a chain whose filters don't read counters gets
// none.
func TestNoCountersUnlessAsked(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	seen := make(chan bool, 1)
	probe := pipeline.ResponseEndFunc("probe", func(ctx context.Context, _ *pipeline.Call, _ *pipeline.End) {
		seen <- pipeline.CountersFromContext(ctx) != nil
	})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{probe}})
	if _, err := env.Client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if <-seen {
		t.Error("the server kept counters nobody asked for")
	}
}
