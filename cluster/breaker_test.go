package cluster_test

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// Modes of blockingBackend's bidi handler, chosen by the "mode" request
// metadata.
const (
	modeBlock = "block" // report on entered, then wait for release or the end of the call
	modeQuiet = "quiet" // wait like block, without reporting
	modeFail  = "fail"  // fail at once with FAILED_PRECONDITION
	modeOK    = "ok"    // echo until the client half-closes, then end OK
	modeHang  = "hang"  // wait for the end of the call, even after release
)

// blockingBackend is a backend whose calls wait until released.
type blockingBackend struct {
	addr    string
	entered chan struct{} // one value per modeBlock call that started
	release chan struct{} // closed by Release
	once    sync.Once
}

// Release ends every waiting call OK, now and later.
func (b *blockingBackend) Release() { b.once.Do(func() { close(b.release) }) }

func startBlockingBackend(t *testing.T) *blockingBackend {
	t.Helper()
	b := &blockingBackend{entered: make(chan struct{}, 1024), release: make(chan struct{})}
	t.Cleanup(b.Release)
	wait := func(ctx context.Context) error {
		select {
		case <-b.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b.addr, _ = testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			b.entered <- struct{}{}
			return &testpb.SimpleResponse{}, wait(ctx)
		},
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			ctx := stream.Context()
			md, _ := metadata.FromIncomingContext(ctx)
			mode := modeBlock
			if v := md.Get("mode"); len(v) > 0 {
				mode = v[0]
			}
			switch mode {
			case modeFail:
				return status.Error(codes.FailedPrecondition, "refused")
			case modeOK:
				for {
					m, err := stream.Recv()
					if err == io.EOF {
						return nil
					}
					if err != nil {
						return err
					}
					if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: m.GetPayload()}); err != nil {
						return err
					}
				}
			case modeBlock:
				b.entered <- struct{}{}
			case modeHang:
				<-ctx.Done()
				return ctx.Err()
			}
			return wait(ctx)
		},
	})
	return b
}

// waitEntered waits until n more modeBlock calls reached the backend.
func (b *blockingBackend) waitEntered(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(20 * time.Second)
	for i := range n {
		select {
		case <-b.entered:
		case <-timeout:
			t.Fatalf("only %d of %d calls reached the backend", i, n)
		}
	}
}

// meter returns a meter provider whose metrics the returned reader
// collects.
func meter(t *testing.T) (*sdkmetric.MeterProvider, *sdkmetric.ManualReader) {
	t.Helper()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	return mp, reader
}

// overflows returns the overflow counter's value for a cluster and limit.
func overflows(t *testing.T, reader *sdkmetric.ManualReader, clusterName, limit string) int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	want := attribute.NewSet(cluster.ClusterKey.String(clusterName), cluster.LimitKey.String(limit))
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != cluster.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			if m.Name != cluster.OverflowMetric {
				continue
			}
			sum, ok := m.Data.(metricdata.Sum[int64])
			if !ok || !sum.IsMonotonic {
				t.Fatalf("%s is %T, want a monotonic int64 sum", m.Name, m.Data)
			}
			for _, dp := range sum.DataPoints {
				if dp.Attributes.Equals(&want) {
					return dp.Value
				}
			}
		}
	}
	return 0
}

// waitInFlight waits until the cluster counts the given calls; releases
// after a cancellation happen on grpc-go's own goroutine, a moment later.
func waitInFlight(t *testing.T, cl *cluster.Cluster, calls, pending int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, p := cl.InFlight()
		if c == calls && p == pending {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("InFlight() = %d, %d; want %d, %d", c, p, calls, pending)
		}
		time.Sleep(time.Millisecond)
	}
}

// openStream starts a bidi call through client in the given backend mode.
func openStream(ctx context.Context, t *testing.T, client testpb.TestServiceClient, mode string) testpb.TestService_FullDuplexCallClient {
	t.Helper()
	stream, err := client.FullDuplexCall(metadata.AppendToOutgoingContext(ctx, "mode", mode))
	if err != nil {
		t.Fatalf("FullDuplexCall: %v", err)
	}
	return stream
}

// wantOverflow checks that err is the circuit breaker's refusal.
func wantOverflow(t *testing.T, err error, msg string) {
	t.Helper()
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != msg {
		t.Fatalf("got %v, want UNAVAILABLE %q", err, msg)
	}
}

// TestMaxRequests: with max_requests N, N calls that the backend holds are
// in flight, the next call through the proxy fails at once with
// UNAVAILABLE naming the cluster and the limit, never reaches the backend,
// and is counted; once the N calls end, calls are admitted again.
func TestMaxRequests(t *testing.T) {
	t.Parallel()
	const n = 3
	backend := startBlockingBackend(t)
	mp, reader := meter(t)
	env := proxytest.Start(t, backend.addr, proxytest.Config{
		Cluster: cluster.Config{CircuitBreakers: cluster.CircuitBreakers{MaxRequests: n}, MeterProvider: mp},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
			errs <- err
		}()
	}
	backend.waitEntered(t, n)
	if c, p := env.Cluster.InFlight(); c != n || p != 0 {
		t.Errorf("InFlight() = %d, %d with %d calls held by the backend; want %d, 0", c, p, n, n)
	}

	const msg = "cluster backend: circuit breaker open: 3 calls in flight (max_requests)"
	_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
	wantOverflow(t, err, msg)
	stream := openStream(ctx, t, env.Client, modeBlock)
	_, err = stream.Recv()
	wantOverflow(t, err, msg)
	if got := overflows(t, reader, "backend", "max_requests"); got != 2 {
		t.Errorf("overflow counter = %d, want 2", got)
	}
	if got := overflows(t, reader, "backend", "max_pending"); got != 0 {
		t.Errorf("max_pending overflow counter = %d, want 0", got)
	}
	select {
	case <-backend.entered:
		t.Fatal("a refused call reached the backend")
	default:
	}

	backend.Release()
	for range n {
		if err := <-errs; err != nil {
			t.Fatalf("admitted call: %v", err)
		}
	}
	// A finished call has given its slot back before its status reaches
	// the client.
	if c, p := env.Cluster.InFlight(); c != 0 || p != 0 {
		t.Errorf("InFlight() = %d, %d after every call ended, want 0, 0", c, p)
	}
	for range n + 1 {
		if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("call after the others ended: %v", err)
		}
	}
}

// TestReleaseOnEveryEnd: a call gives its slot back however it ends:
// cancelled by the client, timed out, failed by the backend, or finished
// normally. After more than a thousand such calls the limit still admits
// exactly N calls. (Cancellation while waiting for a connection is in
// TestMaxPending, a cluster closed under a stream in
// TestBreakerDirectConn.)
func TestReleaseOnEveryEnd(t *testing.T) {
	t.Parallel()
	const n = 4
	backend := startBlockingBackend(t)
	mp, reader := meter(t)
	env := proxytest.Start(t, backend.addr, proxytest.Config{
		Cluster: cluster.Config{CircuitBreakers: cluster.CircuitBreakers{MaxRequests: n, MaxPending: n}, MeterProvider: mp},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	batch := func(run func(i int)) {
		t.Helper()
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { run(i) })
		}
		wg.Wait()
		if t.Failed() {
			t.FailNow()
		}
		waitInFlight(t, env.Cluster, 0, 0)
	}

	// 1000 streams cancelled by the client once they reached the backend.
	for range 1000 / n {
		callCtx, callCancel := context.WithCancel(ctx)
		streams := make([]testpb.TestService_FullDuplexCallClient, n)
		for i := range streams {
			streams[i] = openStream(callCtx, t, env.Client, modeBlock)
		}
		backend.waitEntered(t, n)
		callCancel()
		batch(func(i int) {
			if _, err := streams[i].Recv(); status.Code(err) != codes.Canceled {
				t.Errorf("cancelled stream: %v, want CANCELED", err)
			}
		})
	}
	// Streams that time out.
	for range 40 / n {
		batch(func(int) {
			callCtx, callCancel := context.WithTimeout(ctx, 50*time.Millisecond)
			defer callCancel()
			_, err := openStream(callCtx, t, env.Client, modeQuiet).Recv()
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("timed-out stream: %v, want DEADLINE_EXCEEDED", err)
			}
		})
	}
	// Streams the backend fails, and streams that end normally.
	for range 100 / n {
		batch(func(int) {
			_, err := openStream(ctx, t, env.Client, modeFail).Recv()
			if status.Code(err) != codes.FailedPrecondition {
				t.Errorf("failed stream: %v, want FAILED_PRECONDITION", err)
			}
		})
		batch(func(int) {
			stream := openStream(ctx, t, env.Client, modeOK)
			if err := stream.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}); err != nil {
				t.Errorf("Send: %v", err)
			}
			if err := stream.CloseSend(); err != nil {
				t.Errorf("CloseSend: %v", err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Errorf("Recv: %v", err)
			}
			if _, err := stream.Recv(); err != io.EOF {
				t.Errorf("Recv at the end: %v, want EOF", err)
			}
		})
	}

	// The limit still admits exactly n.
	before := overflows(t, reader, "backend", "max_requests")
	holdCtx, release := context.WithCancel(ctx)
	defer release()
	for range n {
		openStream(holdCtx, t, env.Client, modeBlock)
	}
	backend.waitEntered(t, n)
	_, err := openStream(ctx, t, env.Client, modeBlock).Recv()
	wantOverflow(t, err, "cluster backend: circuit breaker open: 4 calls in flight (max_requests)")
	if got := overflows(t, reader, "backend", "max_requests") - before; got != 1 {
		t.Errorf("overflow counter grew by %d, want 1", got)
	}
	release()
	waitInFlight(t, env.Cluster, 0, 0)
}

// TestMaxPending: calls to an upstream that accepts TCP but never becomes
// ready wait for a connection (wait-for-ready); with max_pending N the
// next call fails at once, naming the limit, and is counted; pending calls
// also count toward max_requests; cancelled pending calls give both slots
// back.
func TestMaxPending(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		breaker cluster.CircuitBreakers
		held    int
		limit   string
		msg     string
	}{
		{"max_pending", cluster.CircuitBreakers{MaxPending: 3}, 3, "max_pending",
			"cluster backend: circuit breaker open: 3 calls waiting for a connection (max_pending)"},
		{"max_requests counts pending calls", cluster.CircuitBreakers{MaxRequests: 2, MaxPending: 5}, 2, "max_requests",
			"cluster backend: circuit breaker open: 2 calls in flight (max_requests)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			mp, reader := meter(t)
			env := proxytest.Start(t, silentAddr(t), proxytest.Config{Cluster: cluster.Config{
				CircuitBreakers: tt.breaker,
				MeterProvider:   mp,
				ConnectTimeout:  time.Minute,
				DialOptions:     []grpc.DialOption{grpc.WithDefaultCallOptions(grpc.WaitForReady(true))},
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			holdCtx, release := context.WithCancel(ctx)
			errs := make(chan error, tt.held)
			for range tt.held {
				go func() {
					_, err := env.Client.UnaryCall(holdCtx, &testpb.SimpleRequest{})
					errs <- err
				}()
			}
			waitInFlight(t, env.Cluster, tt.held, tt.held)

			_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
			wantOverflow(t, err, tt.msg)
			if got := overflows(t, reader, "backend", tt.limit); got != 1 {
				t.Errorf("%s overflow counter = %d, want 1", tt.limit, got)
			}

			release()
			for range tt.held {
				if err := <-errs; status.Code(err) != codes.Canceled {
					t.Errorf("cancelled pending call: %v, want CANCELED", err)
				}
			}
			waitInFlight(t, env.Cluster, 0, 0)

			// Pending slots are free again.
			holdCtx, release = context.WithCancel(ctx)
			defer release()
			go func() { _, _ = env.Client.UnaryCall(holdCtx, &testpb.SimpleRequest{}) }()
			waitInFlight(t, env.Cluster, 1, 1)
		})
	}
}

// TestBreakerDirectConn: the limits also hold for calls made directly on
// the cluster's connection: unary calls, and a stream in flight when the
// cluster is closed gives its slot back.
func TestBreakerDirectConn(t *testing.T) {
	t.Parallel()
	backend := startBlockingBackend(t)
	mp, reader := meter(t)
	cl, err := cluster.New(cluster.Config{
		Name: "direct", Target: "passthrough:///" + backend.addr,
		CircuitBreakers: cluster.CircuitBreakers{MaxRequests: 1}, MeterProvider: mp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	client := testpb.NewTestServiceClient(cl.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	done := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
		done <- err
	}()
	backend.waitEntered(t, 1)
	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{})
	wantOverflow(t, err, "cluster direct: circuit breaker open: 1 call in flight (max_requests)")
	if got := overflows(t, reader, "direct", "max_requests"); got != 1 {
		t.Errorf("overflow counter = %d, want 1", got)
	}
	// Directly on the connection, a refused stream fails in NewStream.
	_, err = client.FullDuplexCall(ctx)
	wantOverflow(t, err, "cluster direct: circuit breaker open: 1 call in flight (max_requests)")
	backend.Release()
	if err := <-done; err != nil {
		t.Fatalf("admitted unary call: %v", err)
	}
	if c, _ := cl.InFlight(); c != 0 {
		t.Fatalf("InFlight() = %d after the unary call, want 0", c)
	}

	// A stream that is never read, its context never cancelled: closing
	// the cluster finishes it.
	stream := openStream(ctx, t, client, modeHang)
	waitInFlight(t, cl, 1, 0)
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	waitInFlight(t, cl, 0, 0)
	// Depending on which of grpc-go's goroutines notices first, the
	// stream fails with the ClientConn's CANCELED or the transport's
	// UNAVAILABLE.
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled && status.Code(err) != codes.Unavailable {
		t.Errorf("stream after Close: %v, want CANCELED or UNAVAILABLE", err)
	}
}

// TestBreakerOffCountsNothing: without limits no interceptor is installed
// and nothing is counted.
func TestBreakerOffCountsNothing(t *testing.T) {
	t.Parallel()
	backend := startBlockingBackend(t)
	env := proxytest.Start(t, backend.addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for range 3 {
		openStream(ctx, t, env.Client, modeBlock)
	}
	backend.waitEntered(t, 3)
	if c, p := env.Cluster.InFlight(); c != 0 || p != 0 {
		t.Errorf("InFlight() = %d, %d without limits, want 0, 0", c, p)
	}
}

// TestBreakerInterceptorFailure: a call that an interceptor further down
// the chain (from DialOptions) fails or panics before grpc-go sees it gives
// its slots back.
func TestBreakerInterceptorFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fail func() error
	}{
		{"error", func() error { return status.Error(codes.PermissionDenied, "interceptor says no") }},
		{"panic", func() error { panic("interceptor bug") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backend := startBlockingBackend(t)
			backend.Release()
			var failNext atomic.Bool
			failNext.Store(true)
			cl, err := cluster.New(cluster.Config{
				Name: "c", Target: "passthrough:///" + backend.addr,
				CircuitBreakers: cluster.CircuitBreakers{MaxRequests: 1, MaxPending: 1},
				DialOptions: []grpc.DialOption{grpc.WithChainStreamInterceptor(
					func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
						if failNext.Swap(false) {
							return nil, tt.fail()
						}
						return streamer(ctx, desc, cc, method, opts...)
					})},
			})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			client := testpb.NewTestServiceClient(cl.Conn())

			func() {
				defer func() { _ = recover() }()
				if _, err := client.FullDuplexCall(ctx); status.Code(err) != codes.PermissionDenied {
					t.Errorf("first call: %v, want the interceptor's PERMISSION_DENIED", err)
				}
			}()
			if c, p := cl.InFlight(); c != 0 || p != 0 {
				t.Fatalf("InFlight() = %d, %d after the failed call, want 0, 0", c, p)
			}
			stream := openStream(ctx, t, client, modeOK)
			if err := stream.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != io.EOF {
				t.Fatalf("call after the failed one: %v, want EOF", err)
			}
		})
	}
}
