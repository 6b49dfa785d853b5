package e2e

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// slowEcho answers unary calls after d, so that calls are in flight when
// a fault strikes.
func slowEcho(d time.Duration) *testbackend.Service {
	return &testbackend.Service{Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
	}}
}

// TestUpstreamRestartDuringLoad: the only upstream is stopped abruptly
// while calls flow through the proxy and comes back on the same port.
// Every call ends (none reaches the hang guard): calls in flight and calls
// made while it is down end with UNAVAILABLE, the others OK; once it is
// back, new calls succeed again without touching the proxy.
func TestUpstreamRestartDuringLoad(t *testing.T) {
	t.Parallel()
	svc := slowEcho(2 * time.Millisecond)
	be := startBackend(t, svc)
	p := startProxy(t, oneToOne(target(be.addr)+", connect_timeout: 1s"))
	cc := dial(t, p.addr)
	mustWork(t, cc)

	counts := newTally()
	stop := make(chan struct{})
	wait := load(8, stop, func() { counts.add(unary(cc, "x")) })
	eventually(t, "calls succeed before the restart", func() bool { return counts.get(codes.OK) >= 100 })

	be.stop()
	eventually(t, "calls fail while the upstream is down", func() bool { return counts.get(codes.Unavailable) > 0 })
	okBefore := counts.get(codes.OK)
	back := startBackendAt(t, svc, be.addr)
	eventually(t, "calls succeed after the restart", func() bool { return counts.get(codes.OK) >= okBefore+100 && back.calls.Load() >= 100 })
	close(stop)
	waitOrHang(t, "load", wait)

	if bad := counts.others(codes.OK, codes.Unavailable); len(bad) > 0 {
		t.Errorf("calls ended with codes other than OK and UNAVAILABLE: %v", bad)
	}
	t.Logf("codes: %v", counts)
	// Once back, the upstream serves every new call.
	for range 20 {
		mustWork(t, cc)
	}
}

// TestUpstreamGracefulStopOtherAddressUp: one of a cluster's two addresses
// stops gracefully (grpc.Server.GracefulStop: GOAWAY, then it waits for its
// calls) while calls flow through the proxy. No call fails: not the calls
// in flight on the stopping upstream, which it lets finish, and not the
// calls started after the stop began: those that reach the stopping
// upstream before its final GOAWAY are still served there, the others go
// to the other address.
//
// What grpc-go guarantees, and a user can rely on: a stream that the
// stopping server never processed — opened on the connection before the
// client read the GOAWAY, or refused with REFUSED_STREAM after the final
// GOAWAY — is retried transparently by the proxy's upstream connection
// (gRPC's transparent retry of unprocessed streams, no retry policy
// needed), and round_robin stops picking an address whose connection is
// draining. So graceful stops of upstream replicas, as in a rolling
// deploy, are invisible to clients as long as one address is up. An
// abrupt stop is not covered: calls in flight on it fail with UNAVAILABLE
// (TestUpstreamRestartDuringLoad).
func TestUpstreamGracefulStopOtherAddressUp(t *testing.T) {
	t.Parallel()
	a := startBackend(t, slowEcho(20*time.Millisecond))
	b := startBackend(t, slowEcho(2*time.Millisecond))
	p := startProxy(t, oneToOne("addresses: ["+a.addr+", "+b.addr+"]"))
	cc := dial(t, p.addr)

	var stopping atomic.Bool
	before, after := newTally(), newTally()
	stop := make(chan struct{})
	wait := load(8, stop, func() {
		started := stopping.Load()
		err := unary(cc, "x")
		if started {
			after.add(err)
		} else {
			before.add(err)
		}
	})
	eventually(t, "both addresses serve", func() bool { return a.calls.Load() >= 20 && b.calls.Load() >= 20 })

	stopping.Store(true)
	stopped := make(chan struct{})
	go func() {
		a.srv.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(guard):
		t.Fatal("GracefulStop did not return: the proxy holds calls open on a draining upstream")
	}
	// Calls keep flowing to the remaining address.
	bAtStop := b.calls.Load()
	eventually(t, "calls go on to the other address", func() bool { return b.calls.Load() >= bAtStop+100 })
	close(stop)
	waitOrHang(t, "load", wait)

	if bad := before.others(codes.OK); len(bad) > 0 {
		t.Errorf("calls in flight when the graceful stop began failed: %v", bad)
	}
	if bad := after.others(codes.OK); len(bad) > 0 {
		t.Errorf("calls started after the graceful stop began failed: %v", bad)
	}
	if after.get(codes.OK) == 0 {
		t.Error("no call was started after the graceful stop began")
	}
	t.Logf("before: %v; after: %v; a served %d, b %d", before, after, a.calls.Load(), b.calls.Load())
}

// TestUpstreamNotGRPC: upstreams that accept the connection but do not
// speak gRPC give the client a clear status with a message, promptly, not
// a hang: plain HTTP/1.1, a server that closes every connection at once,
// and one that accepts and never says a word (bounded by the cluster's
// connect_timeout) give UNAVAILABLE; HTTP/2 without gRPC (h2c answering
// 200 text/html) gives UNKNOWN naming the HTTP status and content-type.
func TestUpstreamNotGRPC(t *testing.T) {
	t.Parallel()
	html := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html>not grpc</html>"))
	})
	for _, tc := range []struct {
		name  string
		start func(t *testing.T) string
		codes []codes.Code
		msg   string // in the status message
	}{
		{"http1", func(t *testing.T) string {
			var protos http.Protocols
			protos.SetHTTP1(true)
			return serveHTTP(t, &http.Server{Handler: html, Protocols: &protos})
		}, []codes.Code{codes.Unavailable}, "connection error"},
		{"h2c not grpc", func(t *testing.T) string {
			var protos http.Protocols
			protos.SetUnencryptedHTTP2(true)
			return serveHTTP(t, &http.Server{Handler: html, Protocols: &protos})
		}, []codes.Code{codes.Unknown}, `content-type "text/html"`},
		{"closes at once", func(t *testing.T) string {
			return serveTCP(t, func(c net.Conn) { _ = c.Close() })
		}, []codes.Code{codes.Unavailable}, ""}, // the message is whichever I/O error came first
		{"silent", func(t *testing.T) string {
			return serveTCP(t, func(c net.Conn) { readUntilClosed(t, c) })
		}, []codes.Code{codes.Unavailable}, "connection error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := tc.start(t)
			p := startProxy(t, oneToOne(target(addr)+", connect_timeout: 500ms"))
			cc := dial(t, p.addr)
			for range 3 {
				err := unary(cc, "x")
				s := status.Convert(err)
				ok := false
				for _, c := range tc.codes {
					ok = ok || s.Code() == c
				}
				if !ok || s.Message() == "" || !strings.Contains(s.Message(), tc.msg) {
					t.Fatalf("got %v; want one of %v with a message containing %q", err, tc.codes, tc.msg)
				}
			}
		})
	}
}

// serveHTTP serves srv on a loopback port until the test ends.
func serveHTTP(t *testing.T, srv *http.Server) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(lis) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return lis.Addr().String()
}

// serveTCP hands every connection accepted on a loopback port to handle
// until the test ends, then closes them.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() {
		_ = lis.Close()
		mu.Lock()
		for _, c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// TestProxyDrainRetryingClientLosesNothing: a proxy drained (its Run
// context ended, as SIGTERM does) while clients keep calling fails no call
// of a client that retries UNAVAILABLE on a second proxy in front of the
// same backend. The call in flight on the draining proxy finishes there;
// new calls to it get UNAVAILABLE promptly (its listener is closed), and
// their retries on the second proxy succeed; the drain ends cleanly.
func TestProxyDrainRetryingClientLosesNothing(t *testing.T) {
	t.Parallel()
	held, release := make(chan struct{}), make(chan struct{})
	var holdOnce sync.Once
	svc := slowEcho(2 * time.Millisecond)
	echo := svc.Unary
	svc.Unary = func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		if string(req.GetPayload().GetBody()) == "hold" {
			holdOnce.Do(func() { close(held) })
			<-release
		}
		return echo(ctx, req)
	}
	be := startBackend(t, svc)
	cfg := writeFile(t, "manifold.yaml", oneToOne(target(be.addr))+"drain_timeout: 20s\n")
	p1 := runManifold(t, "--config", cfg)
	p2 := runManifold(t, "--config", cfg)
	c1, c2 := dial(t, p1.addr), dial(t, p2.addr)
	mustWork(t, c1)
	mustWork(t, c2)

	// The client: the first proxy, and on UNAVAILABLE the second.
	var retried atomic.Int64
	final, first := newTally(), newTally()
	call := func() {
		err := unary(c1, "x")
		first.add(err)
		if status.Code(err) == codes.Unavailable {
			retried.Add(1)
			err = unary(c2, "x")
		}
		final.add(err)
	}
	stop := make(chan struct{})
	wait := load(6, stop, call)

	holdErr := make(chan error, 1)
	go func() { holdErr <- unary(c1, "hold") }()
	<-held
	eventually(t, "calls flow", func() bool { return final.get(codes.OK) >= 50 })

	drained := make(chan int, 1)
	go func() { drained <- p1.stop() }()
	// New calls to the draining proxy are refused with UNAVAILABLE, not
	// held: once one is, every later one is too.
	eventually(t, "the draining proxy refuses new calls", func() bool { return status.Code(unary(c1, "probe")) == codes.Unavailable })
	for range 5 {
		if err := unary(c1, "probe"); status.Code(err) != codes.Unavailable {
			t.Errorf("a new call to the draining proxy: %v; want UNAVAILABLE", err)
		}
	}
	retriedAtDrain := retried.Load()
	eventually(t, "retries succeed on the second proxy", func() bool { return retried.Load() >= retriedAtDrain+50 })

	// The call in flight since before the drain still finishes, on the
	// draining proxy.
	select {
	case err := <-holdErr:
		t.Fatalf("the held call ended before it was released: %v", err)
	default:
	}
	select {
	case code := <-drained:
		t.Fatalf("the drain ended (exit %d) with a call in flight", code)
	default:
	}
	close(release)
	if err := <-holdErr; err != nil {
		t.Errorf("the call in flight during the drain failed: %v", err)
	}
	select {
	case code := <-drained:
		if code != 0 {
			t.Errorf("the drained proxy exited with %d", code)
		}
	case <-time.After(guard):
		t.Fatal("the drain did not end after its last call")
	}
	if logs := p1.logs.String(); strings.Contains(logs, "drain timeout passed") || !strings.Contains(logs, "manifold draining") {
		t.Errorf("the drain was not clean:\n%s", logs)
	}
	close(stop)
	waitOrHang(t, "load", wait)
	if bad := final.others(codes.OK); len(bad) > 0 {
		t.Errorf("calls failed despite the retry: %v", bad)
	}
	if bad := first.others(codes.OK, codes.Unavailable); len(bad) > 0 {
		t.Errorf("the draining proxy failed calls with codes other than UNAVAILABLE: %v", bad)
	}
	t.Logf("first attempts: %v; final: %v", first, final)
}

// TestClientsDisconnectMidStreamLeakNothing: a thousand bidi streams
// through the proxy (100 client connections × 10 streams), each with a
// message sent and echoed, whose client connections are then cut at the
// TCP level without any HTTP/2 goodbye. Afterwards, with the proxy still
// running, no upstream stream is left (the backend's gauge of running
// handlers is back to 0), the proxy holds exactly the one upstream
// connection it had before, and no goroutine started since the proxy
// warmed up is left.
func TestClientsDisconnectMidStreamLeakNothing(t *testing.T) {
	// Not parallel: the goroutine check must see this test's goroutines
	// only.
	const conns, streamsPerConn = 100, 10
	be := startBackend(t, &testbackend.Service{})
	p := startProxy(t, oneToOne(target(be.addr)))
	warm := dial(t, p.addr)
	mustWork(t, warm)
	if n := be.conns.Load(); n != 1 {
		t.Fatalf("the proxy holds %d upstream connections at steady state, want 1", n)
	}
	_ = warm.Close()
	baseline := goleak.IgnoreCurrent()

	var (
		mu  sync.Mutex
		raw []net.Conn
		cut atomic.Bool
	)
	dialer := func(ctx context.Context, addr string) (net.Conn, error) {
		if cut.Load() {
			return nil, errors.New("client gone")
		}
		c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
		if err == nil {
			mu.Lock()
			raw = append(raw, c)
			mu.Unlock()
		}
		return c, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	clients := make([]*grpc.ClientConn, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns*streamsPerConn)
	for i := range clients {
		clients[i] = dial(t, p.addr, grpc.WithContextDialer(dialer))
		client := testgrpc.NewTestServiceClient(clients[i])
		for range streamsPerConn {
			wg.Go(func() {
				s, err := client.FullDuplexCall(ctx)
				if err == nil {
					err = s.Send(&testgrpc.StreamingOutputCallRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}})
				}
				if err == nil {
					_, err = s.Recv()
				}
				if err != nil {
					errs <- err
				}
			})
		}
	}
	waitOrHang(t, "opening streams", wg.Wait)
	close(errs)
	for err := range errs {
		t.Fatalf("opening a stream: %v", err)
	}
	if n := be.active.Load(); n != conns*streamsPerConn {
		t.Fatalf("the backend runs %d streams, want %d", n, conns*streamsPerConn)
	}

	// Cut every client connection: no RST_STREAM, no GOAWAY, just gone.
	cut.Store(true)
	mu.Lock()
	for _, c := range raw {
		_ = c.Close()
	}
	mu.Unlock()
	cancel()
	for _, cc := range clients {
		_ = cc.Close()
	}

	eventually(t, "upstream streams end", func() bool { return be.active.Load() == 0 })
	if n := be.conns.Load(); n != 1 {
		t.Errorf("the proxy holds %d upstream connections after the clients left, want 1", n)
	}
	var leak error
	deadline := time.Now().Add(guard)
	for leak = goleak.Find(baseline); leak != nil && time.Now().Before(deadline); leak = goleak.Find(baseline) {
		time.Sleep(50 * time.Millisecond)
	}
	if leak != nil {
		t.Errorf("goroutines left behind by the streams:\n%v", leak)
	}
	// The proxy still serves, on the same upstream connection.
	mustWork(t, dial(t, p.addr))
	if n := be.conns.Load(); n != 1 {
		t.Errorf("the proxy holds %d upstream connections, want 1", n)
	}
}
