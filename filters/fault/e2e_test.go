package fault_test

import (
	"context"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/fault"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// backend counts the calls it serves and keeps the last one's metadata.
type backend struct {
	addr   string
	served atomic.Int64
	mu     sync.Mutex
	md     metadata.MD
}

func startBackend(t *testing.T) *backend {
	b := &backend{}
	b.addr, _ = testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			b.served.Add(1)
			md, _ := metadata.FromIncomingContext(ctx)
			b.mu.Lock()
			b.md = md
			b.mu.Unlock()
			return &testgrpc.SimpleResponse{}, nil
		},
	})
	return b
}

func (b *backend) lastMD() metadata.MD {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.md
}

// gate is a fake delay: each wait reports its duration on waits and
// returns when the test opens it, or when the call's context ends.
type gate struct {
	waits chan time.Duration
	open  chan struct{}
}

func newGate() *gate {
	return &gate{waits: make(chan time.Duration, 100), open: make(chan struct{}, 100)}
}

func (g *gate) wait(ctx context.Context, d time.Duration) error {
	g.waits <- d
	select {
	case <-g.open:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// nextWait returns the duration of the next wait to start.
func (g *gate) nextWait(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-g.waits:
		return d
	case <-time.After(20 * time.Second):
		t.Fatal("no delay started")
		return 0
	}
}

func pct(p float64) *float64 { return &p }

func start(t *testing.T, b *backend, cfg fault.Config, opts ...fault.Option) *proxytest.Env {
	t.Helper()
	f, err := fault.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return proxytest.Start(t, b.addr, proxytest.Config{Filters: []pipeline.Filter{f}})
}

func unary(ctx context.Context, env *proxytest.Env, kv ...string) error {
	_, err := env.Client.UnaryCall(metadata.AppendToOutgoingContext(ctx, kv...), &testgrpc.SimpleRequest{})
	return err
}

// TestAbort: an abort answers with the configured code and message, and
// the upstream never sees the call, unary or stream.
func TestAbort(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	env := start(t, b, fault.Config{Abort: &fault.Abort{Code: "UNAVAILABLE", Message: "injected outage", Percent: pct(100)}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	for i := range 3 {
		st := status.Convert(unary(ctx, env))
		if st.Code() != codes.Unavailable || st.Message() != "injected outage" {
			t.Fatalf("call %d: %v %q, want UNAVAILABLE \"injected outage\"", i, st.Code(), st.Message())
		}
	}
	s, err := env.Client.FullDuplexCall(ctx)
	if err == nil {
		_, err = s.Recv()
	}
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("stream: %v", err)
	}
	if n := b.served.Load(); n != 0 {
		t.Fatalf("backend served %d calls, want 0", n)
	}
	// The same backend answers directly: the calls were aborted, not lost.
	if _, err := env.Direct.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil || b.served.Load() != 1 {
		t.Fatalf("direct call: %v, served %d", err, b.served.Load())
	}
}

// TestDefaultAbortMessage: without a message, the abort says it was
// injected.
func TestDefaultAbortMessage(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	env := start(t, b, fault.Config{Abort: &fault.Abort{Code: "resource_exhausted"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st := status.Convert(unary(ctx, env))
	if st.Code() != codes.ResourceExhausted || st.Message() != fault.DefaultAbortMessage {
		t.Fatalf("%v %q", st.Code(), st.Message())
	}
}

// TestDelay: a delayed call reaches the upstream only after its delay,
// then completes normally.
func TestDelay(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	g := newGate()
	env := start(t, b, fault.Config{Delay: &fault.Delay{Duration: 1500 * time.Millisecond}}, fault.WithWait(g.wait))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	errc := make(chan error, 1)
	go func() { errc <- unary(ctx, env) }()
	if d := g.nextWait(t); d != 1500*time.Millisecond {
		t.Fatalf("delay %v, want 1.5s", d)
	}
	// Held in the delay: the call is pending and the backend has not
	// seen it.
	select {
	case err := <-errc:
		t.Fatalf("the call ended during its delay: %v", err)
	default:
	}
	if n := b.served.Load(); n != 0 {
		t.Fatalf("backend served %d calls during the delay", n)
	}
	g.open <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := b.served.Load(); n != 1 {
		t.Fatalf("backend served %d calls after the delay, want 1", n)
	}
}

// TestDelayThenAbort: with both faults, the delay comes first, then the
// abort; the upstream sees nothing.
func TestDelayThenAbort(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	g := newGate()
	env := start(t, b, fault.Config{
		Delay: &fault.Delay{Duration: time.Second},
		Abort: &fault.Abort{Code: "INTERNAL"},
	}, fault.WithWait(g.wait))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- unary(ctx, env) }()
	g.nextWait(t)
	select {
	case err := <-errc:
		t.Fatalf("aborted before the delay ended: %v", err)
	default:
	}
	g.open <- struct{}{}
	if err := <-errc; status.Code(err) != codes.Internal {
		t.Fatalf("%v, want INTERNAL", err)
	}
	if n := b.served.Load(); n != 0 {
		t.Fatalf("backend served %d", n)
	}
}

// TestDelayEndsWithTheCall: the client's cancellation or deadline ends a
// delay (the real timer, an hour long), and the upstream never sees the
// call.
func TestDelayEndsWithTheCall(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	env := start(t, b, fault.Config{Delay: &fault.Delay{Duration: time.Hour}})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := unary(ctx, env); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("call with a deadline: %v", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- unary(ctx, env) }()
	cancel()
	if err := <-errc; status.Code(err) != codes.Canceled {
		t.Fatalf("cancelled call: %v", err)
	}
	if n := b.served.Load(); n != 0 {
		t.Fatalf("backend served %d", n)
	}
}

// TestDelayStatus: the filter itself ends a delay with the status of the
// context: CANCELLED or DEADLINE_EXCEEDED.
func TestDelayStatus(t *testing.T) {
	t.Parallel()
	f, err := fault.New(fault.Config{Delay: &fault.Delay{Duration: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Unix(1, 0))
	defer cancel2()
	for _, tc := range []struct {
		ctx  context.Context
		code codes.Code
		msg  string
	}{
		{cancelled, codes.Canceled, "fault: context canceled during the injected delay"},
		{expired, codes.DeadlineExceeded, "fault: context deadline exceeded during the injected delay"},
	} {
		st := status.Convert(f.OnRequestHeaders(tc.ctx, &pipeline.Call{Inbound: metadata.MD{}, Header: metadata.MD{}}))
		if st.Code() != tc.code || st.Message() != tc.msg {
			t.Errorf("%v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
		}
	}
}

// lockedRand is a seeded source safe for concurrent use.
func lockedRand(seed uint64) func() float64 {
	var mu sync.Mutex
	r := rand.New(rand.NewPCG(seed, seed))
	return func() float64 {
		mu.Lock()
		defer mu.Unlock()
		return r.Float64()
	}
}

// TestPercent: with percent 50 and a seeded source, exactly the calls whose
// draw is below 0.5 are aborted, in order, and only the others reach the
// upstream.
func TestPercent(t *testing.T) {
	t.Parallel()
	const calls, seed = 200, 42
	b := startBackend(t)
	env := start(t, b, fault.Config{Abort: &fault.Abort{Code: "UNAVAILABLE", Percent: pct(50)}}, fault.WithRandom(lockedRand(seed)))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	replay := lockedRand(seed)
	aborted := 0
	for i := range calls {
		want := codes.OK
		if replay() < 0.5 {
			want = codes.Unavailable
			aborted++
		}
		if got := status.Code(unary(ctx, env)); got != want {
			t.Fatalf("call %d: %v, want %v", i, got, want)
		}
	}
	if aborted == 0 || aborted == calls {
		t.Fatalf("the seed aborts %d of %d calls: pick one that splits", aborted, calls)
	}
	if n := b.served.Load(); n != int64(calls-aborted) {
		t.Fatalf("backend served %d, want %d", n, calls-aborted)
	}
}

// TestDraws: one draw per fault with a percent strictly between 0 and 100,
// delay first; a fault applies when its draw*100 is below its percent.
func TestDraws(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name                 string
		delayPct, abortPct   float64
		draws                []float64
		wantDelay, wantAbort bool
		wantDraws            int
	}{
		{"both hit", 30, 60, []float64{0.29, 0.59}, true, true, 2},
		{"delay misses at the boundary", 30, 60, []float64{0.30, 0.1}, false, true, 2},
		{"abort misses", 30, 60, []float64{0.0, 0.6}, true, false, 2},
		{"100 and 0 draw nothing", 100, 0, nil, true, false, 0},
		{"0 and 100 draw nothing", 0, 100, nil, false, true, 0},
		{"only the abort draws", 100, 0.5, []float64{0.004}, true, true, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var n int
			random := func() float64 {
				if n >= len(tc.draws) {
					t.Fatalf("draw %d, want %d draws", n+1, len(tc.draws))
				}
				n++
				return tc.draws[n-1]
			}
			var delayed bool
			f, err := fault.New(fault.Config{
				Delay: &fault.Delay{Duration: time.Second, Percent: pct(tc.delayPct)},
				Abort: &fault.Abort{Code: "ABORTED", Percent: pct(tc.abortPct)},
			}, fault.WithRandom(random), fault.WithWait(func(context.Context, time.Duration) error {
				delayed = true
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			err = f.OnRequestHeaders(context.Background(), &pipeline.Call{Inbound: metadata.MD{}, Header: metadata.MD{}})
			if delayed != tc.wantDelay || (status.Code(err) == codes.Aborted) != tc.wantAbort || n != tc.wantDraws {
				t.Errorf("delayed %v, status %v, %d draws; want delayed %v, aborted %v, %d draws", delayed, err, n, tc.wantDelay, tc.wantAbort, tc.wantDraws)
			}
		})
	}
}

// TestHeaderControl: with header_control only calls that ask are faulted,
// as they ask; without it, the headers do nothing. Either way they never
// reach the upstream.
func TestHeaderControl(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	g := newGate()
	env := start(t, b, fault.Config{HeaderControl: true, Abort: &fault.Abort{Message: "chaos"}}, fault.WithWait(g.wait))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// No header, no fault.
	if err := unary(ctx, env, "x-keep", "1"); err != nil {
		t.Fatal(err)
	}
	if got := b.lastMD().Get("x-keep"); len(got) != 1 {
		t.Fatalf("backend metadata %v", b.lastMD())
	}
	// The header's code and the config's message.
	st := status.Convert(unary(ctx, env, fault.AbortHeader, "RESOURCE_EXHAUSTED"))
	if st.Code() != codes.ResourceExhausted || st.Message() != "chaos" {
		t.Fatalf("abort header: %v %q", st.Code(), st.Message())
	}
	// The header's delay; the call then goes upstream without the header.
	errc := make(chan error, 1)
	go func() { errc <- unary(ctx, env, fault.DelayHeader, "150ms") }()
	if d := g.nextWait(t); d != 150*time.Millisecond {
		t.Fatalf("delay %v, want the header's 150ms", d)
	}
	if n := b.served.Load(); n != 1 {
		t.Fatalf("backend served %d during the delay, want 1", n)
	}
	g.open <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	for k := range b.lastMD() {
		if strings.HasPrefix(k, "x-manifold-fault") {
			t.Errorf("backend got %s", k)
		}
	}
	// Malformed values are the client's mistake.
	for _, kv := range [][2]string{{fault.DelayHeader, "soon"}, {fault.DelayHeader, "-1s"}, {fault.AbortHeader, "BROKEN"}, {fault.AbortHeader, "OK"}} {
		st := status.Convert(unary(ctx, env, kv[0], kv[1]))
		if st.Code() != codes.InvalidArgument || !strings.HasPrefix(st.Message(), "fault: "+kv[0]+": ") {
			t.Errorf("%s: %s: %v %q, want INVALID_ARGUMENT", kv[0], kv[1], st.Code(), st.Message())
		}
	}
	if n := b.served.Load(); n != 2 {
		t.Fatalf("backend served %d, want 2", n)
	}

	// Without header_control, the headers neither fault nor pass.
	b2 := startBackend(t)
	g2 := newGate()
	env2 := start(t, b2, fault.Config{Delay: &fault.Delay{Duration: time.Second}}, fault.WithWait(g2.wait))
	go func() { errc <- unary(ctx, env2, fault.AbortHeader, "INTERNAL", fault.DelayHeader, "1h") }()
	if d := g2.nextWait(t); d != time.Second {
		t.Fatalf("delay %v, want the config's 1s, not the header's", d)
	}
	g2.open <- struct{}{}
	if err := <-errc; err != nil {
		t.Fatalf("a call with an abort header but header_control off: %v", err)
	}
	for k := range b2.lastMD() {
		if strings.HasPrefix(k, "x-manifold-fault") {
			t.Errorf("backend got %s", k)
		}
	}
}

// TestHeaderControlPercent: with header_control, the config's percent still
// applies to the calls that ask.
func TestHeaderControlPercent(t *testing.T) {
	t.Parallel()
	b := startBackend(t)
	draws := []float64{0.1, 0.9}
	var i atomic.Int64
	env := start(t, b, fault.Config{HeaderControl: true, Abort: &fault.Abort{Percent: pct(50)}},
		fault.WithRandom(func() float64 { return draws[i.Add(1)-1] }))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := unary(ctx, env); err != nil {
		t.Fatalf("a call without the header: %v", err)
	}
	if err := unary(ctx, env, fault.AbortHeader, "14"); status.Code(err) != codes.Unavailable {
		t.Fatalf("draw 0.1: %v, want UNAVAILABLE", err)
	}
	if err := unary(ctx, env, fault.AbortHeader, "14"); err != nil {
		t.Fatalf("draw 0.9: %v, want OK", err)
	}
	if n := i.Load(); n != 2 {
		t.Fatalf("%d draws, want 2 (none for the call without the header)", n)
	}
}
