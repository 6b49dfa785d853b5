package concurrency_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/concurrency"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// blockingBackend serves unary calls according to the x-mode header:
// "block" (default) signals arrived and waits for release or the end of
// the call; "hold" waits for the end of the call; "fail" returns
// UNAVAILABLE at once; "ok" answers at once. A blocked call with an x-id
// header signals its own channel (see expect) instead of arrived.
type blockingBackend struct {
	addr    string
	arrived chan struct{}
	release chan struct{}
	served  atomic.Int64
	byID    sync.Map // x-id header → chan closed when the call arrives, instead of arrived
	nextID  atomic.Int64

	mu    sync.Mutex
	order []string // x-name of the "ok" calls, in the order they arrived
}

func startBackend(t *testing.T) *blockingBackend {
	b := &blockingBackend{arrived: make(chan struct{}, 1024), release: make(chan struct{})}
	b.addr, _ = testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			b.served.Add(1)
			md, _ := metadata.FromIncomingContext(ctx)
			mode := "block"
			if v := md.Get("x-mode"); len(v) > 0 {
				mode = v[0]
			}
			switch mode {
			case "hold":
				<-ctx.Done()
				return nil, ctx.Err()
			case "fail":
				return nil, status.Error(codes.Unavailable, "backend: failing on purpose")
			case "ok":
				if v := md.Get("x-name"); len(v) > 0 {
					b.mu.Lock()
					b.order = append(b.order, v[0])
					b.mu.Unlock()
				}
				return &testgrpc.SimpleResponse{}, nil
			}
			if v := md.Get("x-id"); len(v) > 0 {
				if ch, ok := b.byID.Load(v[0]); ok {
					close(ch.(chan struct{}))
				}
			} else {
				b.arrived <- struct{}{}
			}
			select {
			case <-b.release:
				return &testgrpc.SimpleResponse{}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	return b
}

// expect returns the x-id of a call to make and a channel closed when it
// arrives at the backend.
func (b *blockingBackend) expect() (string, chan struct{}) {
	id := fmt.Sprint(b.nextID.Add(1))
	ch := make(chan struct{})
	b.byID.Store(id, ch)
	return id, ch
}

// waitArrived waits for n blocked calls to reach the backend.
func (b *blockingBackend) waitArrived(t *testing.T, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-b.arrived:
		case <-time.After(20 * time.Second):
			t.Fatalf("only %d of %d calls reached the backend", i, n)
		}
	}
}

// chaos is a filter after the limit that ends calls on request: x-chaos
// "reply" is a local reply, "panic" panics.
var chaos = pipeline.RequestHeadersFunc("chaos", func(_ context.Context, call *pipeline.Call) error {
	switch v := call.Inbound.Get("x-chaos"); {
	case len(v) == 0:
		return nil
	case v[0] == "reply":
		return status.Error(codes.PermissionDenied, "chaos: no")
	case v[0] == "panic":
		panic("chaos: panic in a later filter")
	}
	return nil
})

// quiet keeps expected panics out of the test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func newFilter(t *testing.T, cfg concurrency.Config) *concurrency.Filter {
	t.Helper()
	f, err := concurrency.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// waitIdle waits until no call holds a slot or waits for one: the slot of
// a call the client cancelled is given back when the proxy notices.
func waitIdle(t *testing.T, f *concurrency.Filter) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f.InFlight() != 0 || f.Pending() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still hold a slot and %d wait: a slot leaked", f.InFlight(), f.Pending())
		}
		time.Sleep(time.Millisecond)
	}
}

// unary calls through the proxy with headers kv.
func unary(ctx context.Context, env *proxytest.Env, kv ...string) error {
	_, err := env.Client.UnaryCall(metadata.AppendToOutgoingContext(ctx, kv...), &testgrpc.SimpleRequest{})
	return err
}

// blocked is a set of calls blocked in the backend.
type blocked struct {
	b    *blockingBackend
	errs chan error
	n    int
}

// fill starts n calls that block in the backend and waits until they are
// there.
func fill(t *testing.T, ctx context.Context, env *proxytest.Env, b *blockingBackend, n int) *blocked {
	t.Helper()
	bl := &blocked{b: b, errs: make(chan error, n), n: n}
	for range n {
		go func() { bl.errs <- unary(ctx, env) }()
	}
	b.waitArrived(t, n)
	return bl
}

// finish releases the k calls still blocked and checks that all n passed.
func (bl *blocked) finish(t *testing.T, k int) {
	t.Helper()
	for range k {
		bl.b.release <- struct{}{}
	}
	for range bl.n {
		if err := <-bl.errs; err != nil {
			t.Errorf("a blocked call: %v", err)
		}
	}
}

// TestLimit: with N calls in flight the next one is refused at once, before
// the upstream; when one ends, a new one is admitted.
func TestLimit(t *testing.T) {
	t.Parallel()
	const n = 3
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: n})
	env := proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	bl := fill(t, ctx, env, b, n)
	if got := f.InFlight(); got != n {
		t.Fatalf("in flight %d, want %d", got, n)
	}
	err := unary(ctx, env, "x-mode", "ok")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "concurrency_limit: 3 calls in flight" {
		t.Fatalf("call %d: %v, want RESOURCE_EXHAUSTED \"concurrency_limit: 3 calls in flight\"", n+1, err)
	}
	if got := b.served.Load(); got != n {
		t.Fatalf("backend saw %d calls, want %d: the refused call reached it", got, n)
	}

	// One ends, and a new call is admitted.
	b.release <- struct{}{}
	if err := <-bl.errs; err != nil {
		t.Fatal(err)
	}
	bl.n--
	if err := unary(ctx, env, "x-mode", "ok"); err != nil {
		t.Fatalf("a call after one ended: %v", err)
	}
	bl.finish(t, n-1)
	waitIdle(t, f)
}

// TestNoLeak: calls that end in every way there is give their slots back:
// after 1000 of them the filter still admits N calls, and refuses the next.
func TestNoLeak(t *testing.T) {
	t.Parallel()
	const n = 4
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: n})
	// chaos runs in a route chain behind the limit's chain, whose logger
	// keeps the expected panics out of the test output.
	env := proxytest.Start(t, b.addr, proxytest.Config{
		Filters: []pipeline.Filter{f},
		Terminal: func(cl *cluster.Cluster) pipeline.Handler {
			chain, err := pipeline.Build([]pipeline.Filter{chaos}, route.New(cl), pipeline.WithLogger(quiet))
			if err != nil {
				t.Fatal(err)
			}
			return chain
		},
	})

	// Each round runs n calls at once, all ending the same way.
	endings := []struct {
		name string
		run  func(ctx context.Context) error
		want codes.Code
	}{
		{"client cancels in the upstream", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			id, arrived := b.expect()
			go func() { errc <- unary(ctx, env, "x-id", id) }()
			select {
			case <-arrived:
			case err := <-errc:
				cancel()
				return fmt.Errorf("ended before reaching the backend: %w", err)
			}
			cancel()
			return <-errc
		}, codes.Canceled},
		{"deadline passes", func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
			defer cancel()
			return unary(ctx, env, "x-mode", "hold")
		}, codes.DeadlineExceeded},
		{"upstream fails", func(ctx context.Context) error { return unary(ctx, env, "x-mode", "fail") }, codes.Unavailable},
		{"upstream succeeds", func(ctx context.Context) error { return unary(ctx, env, "x-mode", "ok") }, codes.OK},
		{"later filter replies", func(ctx context.Context) error { return unary(ctx, env, "x-chaos", "reply") }, codes.PermissionDenied},
		{"later filter panics", func(ctx context.Context) error { return unary(ctx, env, "x-chaos", "panic") }, codes.Internal},
		{"stream cancelled mid-way", func(ctx context.Context) error {
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			s, err := env.Client.FullDuplexCall(ctx)
			if err != nil {
				return err
			}
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
				return err
			}
			if _, err := s.Recv(); err != nil {
				return err
			}
			cancel()
			_, err = s.Recv()
			return err
		}, codes.Canceled},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	calls := 0
	for round := 0; calls < 1000; round++ {
		e := endings[round%len(endings)]
		errs := make(chan error, n)
		for range n {
			go func() { errs <- e.run(ctx) }()
		}
		for range n {
			if err := <-errs; status.Code(err) != e.want {
				t.Fatalf("round %d (%s): %v, want %v", round, e.name, err, e.want)
			}
		}
		calls += n
		// The proxy notices a cancel after the client returned: wait for
		// it, so that the next round's calls find their slots.
		waitIdle(t, f)
	}

	bl := fill(t, ctx, env, b, n)
	if err := unary(ctx, env, "x-mode", "ok"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("call %d after %d others ended: %v, want RESOURCE_EXHAUSTED", n+1, calls, err)
	}
	bl.finish(t, n)
	waitIdle(t, f)
}

// TestStreamsHoldSlots: a stream holds its slot from its start to its end,
// not per message.
func TestStreamsHoldSlots(t *testing.T) {
	t.Parallel()
	const n = 2
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: n})
	env := proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var streams []testgrpc.TestService_FullDuplexCallClient
	for i := range n {
		s, err := env.Client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// Between messages, the stream still counts.
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams = append(streams, s)
	}
	if err := unary(ctx, env, "x-mode", "ok"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("a call while %d streams are open: %v", n, err)
	}
	for i, s := range streams {
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end of stream %d: %v", i, err)
		}
		if i == 0 {
			if err := unary(ctx, env, "x-mode", "ok"); err != nil {
				t.Fatalf("a call after stream 0 ended: %v", err)
			}
		}
	}
	waitIdle(t, f)
}

// TestTerminalPanics: a panic in the terminal still gives the slot back.
func TestTerminalPanics(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: 1})
	var panics atomic.Int64
	env := proxytest.Start(t, b.addr, proxytest.Config{
		Filters:       []pipeline.Filter{f},
		ServerOptions: []server.Option{server.WithLogger(quiet)},
		Terminal: func(*cluster.Cluster) pipeline.Handler {
			return pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
				panics.Add(1)
				panic("terminal: boom")
			})
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range 5 {
		if err := unary(ctx, env); status.Code(err) != codes.Internal {
			t.Fatalf("call %d: %v, want INTERNAL", i, err)
		}
	}
	if got := panics.Load(); got != 5 {
		t.Fatalf("terminal ran %d times, want 5: a slot leaked", got)
	}
	waitIdle(t, f)
}

// TestQueueOrder: with max_pending, calls beyond the limit wait their turn
// first come first served, and the queue is bounded.
func TestQueueOrder(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: 1, MaxPending: 2, QueueTimeout: time.Hour})
	env := proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	first := fill(t, ctx, env, b, 1)
	errs := make(chan error, 2)
	for i, name := range []string{"second", "third"} {
		go func() { errs <- unary(ctx, env, "x-mode", "ok", "x-name", name) }()
		waitPending(t, f, i+1)
	}
	err := unary(ctx, env, "x-mode", "ok")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "concurrency_limit: 1 calls in flight and 2 waiting" {
		t.Fatalf("a call with the queue full: %v", err)
	}
	if got := b.served.Load(); got != 1 {
		t.Fatalf("backend saw %d calls, want 1", got)
	}
	first.finish(t, 1)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a waiting call: %v", err)
		}
	}
	// The order the calls reached the backend, one at a time: the order
	// they got the slot. (The order they finish at the client is not: a
	// slot is given back before the answer reaches the client.)
	b.mu.Lock()
	order := fmt.Sprint(b.order)
	b.mu.Unlock()
	if order != "[second third]" {
		t.Fatalf("waiting calls ran in order %v", order)
	}
	waitIdle(t, f)
}

// TestQueueTimeout: a call that waits queue_timeout without a slot is
// refused, without reaching the upstream.
func TestQueueTimeout(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: 1, MaxPending: 1, QueueTimeout: 10 * time.Millisecond})
	env := proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first := fill(t, ctx, env, b, 1)
	err := unary(ctx, env, "x-mode", "ok")
	if st := status.Convert(err); st.Code() != codes.ResourceExhausted || st.Message() != "concurrency_limit: no slot free after waiting 10ms" {
		t.Fatalf("a call that waited: %v", err)
	}
	if got, pending := b.served.Load(), f.Pending(); got != 1 || pending != 0 {
		t.Fatalf("backend saw %d calls (want 1), %d still wait (want 0)", got, pending)
	}
	first.finish(t, 1)
	waitIdle(t, f)
}

// TestQueueGiveUp: a waiting call whose client gives up leaves the queue
// and takes no slot.
func TestQueueGiveUp(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	f := newFilter(t, concurrency.Config{MaxConcurrent: 1, MaxPending: 1, QueueTimeout: time.Hour})
	env := proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	first := fill(t, ctx, env, b, 1)
	gctx, giveUp := context.WithCancel(ctx)
	gerr := make(chan error, 1)
	go func() { gerr <- unary(gctx, env, "x-mode", "ok") }()
	waitPending(t, f, 1)
	giveUp()
	if err := <-gerr; status.Code(err) != codes.Canceled {
		t.Fatalf("the call that gave up: %v", err)
	}
	waitPending(t, f, 0)

	// The queue has room again, and the slot goes to the next caller.
	next := make(chan error, 1)
	go func() { next <- unary(ctx, env, "x-mode", "ok") }()
	waitPending(t, f, 1)
	first.finish(t, 1)
	if err := <-next; err != nil {
		t.Fatalf("the next caller: %v", err)
	}
	if got := b.served.Load(); got != 2 {
		t.Fatalf("backend saw %d calls, want 2", got)
	}
	waitIdle(t, f)
}

// waitPending waits until n calls wait for a slot.
func waitPending(t *testing.T, f *concurrency.Filter, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for f.Pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls wait, want %d", f.Pending(), n)
		}
		time.Sleep(time.Millisecond)
	}
}
