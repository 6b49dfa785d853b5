package server_test

import (
	"context"
	"io"
	"sync"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/filters/route"
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

// TestCountersAfterSwap: counting is decided per handler, so a reload that
// adds a filter reading the counters gets them from its first call, and
// one that removes it stops counting.
func TestCountersAfterSwap(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	seen := make(chan *pipeline.Counters, 1)
	report := func(ctx context.Context, _ *pipeline.Call, _ *pipeline.End) {
		seen <- pipeline.CountersFromContext(ctx)
	}
	probe := pipeline.ResponseEndFunc("probe", report)
	counting := countingFilter{report}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{probe}})
	swap := func(f pipeline.Filter) {
		t.Helper()
		chain, err := pipeline.Build([]pipeline.Filter{f}, route.New(env.Cluster))
		if err != nil {
			t.Fatal(err)
		}
		<-env.Proxy.Swap(chain)
	}
	call := func() *pipeline.Counters {
		t.Helper()
		req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 100)}}
		if _, err := env.Client.UnaryCall(context.Background(), req); err != nil {
			t.Fatal(err)
		}
		return <-seen
	}
	if c := call(); c != nil {
		t.Fatal("counters before any filter asked for them")
	}
	swap(counting)
	c := call()
	if c == nil {
		t.Fatal("no counters after a reload added a filter that reads them")
	}
	if c.RequestMessages.Load() != 1 || c.RequestBytes.Load() < 100 || c.ResponseMessages.Load() != 1 {
		t.Errorf("counters = %d/%d %d/%d, want one request of ≥100 bytes and one response",
			c.RequestMessages.Load(), c.RequestBytes.Load(), c.ResponseMessages.Load(), c.ResponseBytes.Load())
	}
	swap(probe)
	if c := call(); c != nil {
		t.Error("counters kept after a reload removed the filter that read them")
	}
}

// TestCountersClientStream: every message of a client stream is counted,
// with its size as the client encoded it.
func TestCountersClientStream(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	got := make(chan [4]int64, 1)
	count := countingFilter{func(ctx context.Context, _ *pipeline.Call, _ *pipeline.End) {
		c := pipeline.CountersFromContext(ctx)
		got <- [4]int64{c.RequestMessages.Load(), c.RequestBytes.Load(), c.ResponseMessages.Load(), c.ResponseBytes.Load()}
	}}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{count}})
	s, err := env.Client.StreamingInputCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want int64
	for _, n := range []int{1, 200, 5000} {
		req := &testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}
		want += int64(proto.Size(req))
		if err := s.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	if c := <-got; c[0] != 3 || c[1] != want || c[2] != 1 || c[3] == 0 {
		t.Errorf("counters = %v, want [3 %d 1 >0]", c, want)
	}
}
