package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold"
	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/server"
)

// guard bounds every wait in this package. It is a hang detector, not a
// performance assertion: nothing here should come close to it.
const guard = 20 * time.Second

// unaryMethod is the test service's unary method.
const unaryMethod = "/grpc.testing.TestService/UnaryCall"

// backend is a grpc-go TestService upstream on loopback whose gauges show
// what the proxy holds open on it.
type backend struct {
	addr string
	srv  *grpc.Server
	// accepted counts TCP connections accepted by the listener, whatever
	// they speak.
	accepted atomic.Int64
	// conns is the number of HTTP/2 connections open (grpc-go's stats
	// ConnBegin and ConnEnd).
	conns atomic.Int64
	// calls counts the calls that reached a handler; active those still in
	// one.
	calls, active atomic.Int64
	done          chan struct{}
}

// startBackend serves svc on a new loopback port until the test ends.
func startBackend(t testing.TB, svc *testbackend.Service) *backend {
	t.Helper()
	return startBackendAt(t, svc, "127.0.0.1:0")
}

// startBackendOpts is startBackend with grpc server options.
func startBackendOpts(t testing.TB, svc *testbackend.Service, opts ...grpc.ServerOption) *backend {
	t.Helper()
	return startBackendAt(t, svc, "127.0.0.1:0", opts...)
}

// startBackendAt serves svc on addr until the test ends, retrying the
// listen for a while: a restarted upstream takes back the port it had.
func startBackendAt(t testing.TB, svc *testbackend.Service, addr string, opts ...grpc.ServerOption) *backend {
	t.Helper()
	var lis net.Listener
	var err error
	for deadline := time.Now().Add(guard); ; {
		if lis, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{addr: lis.Addr().String(), done: make(chan struct{})}
	b.srv = grpc.NewServer(append([]grpc.ServerOption{
		grpc.StatsHandler(connGauge{&b.conns}),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			b.calls.Add(1)
			b.active.Add(1)
			defer b.active.Add(-1)
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			b.calls.Add(1)
			b.active.Add(1)
			defer b.active.Add(-1)
			return h(srv, ss)
		}),
	}, opts...)...)
	testgrpc.RegisterTestServiceServer(b.srv, svc)
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(&countingListener{Listener: lis, n: &b.accepted})
	}()
	t.Cleanup(b.stop)
	return b
}

// stop stops the backend abruptly and waits for Serve to return.
func (b *backend) stop() {
	b.srv.Stop()
	<-b.done
}

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// connGauge is a stats.Handler keeping the number of open connections.
type connGauge struct{ n *atomic.Int64 }

func (connGauge) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (connGauge) HandleRPC(context.Context, stats.RPCStats)                       {}
func (connGauge) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (g connGauge) HandleConn(_ context.Context, s stats.ConnStats) {
	switch s.(type) {
	case *stats.ConnBegin:
		g.n.Add(1)
	case *stats.ConnEnd:
		g.n.Add(-1)
	}
}

// proxy is a proxy built from a config file with config.Load and
// config.Build, serving its one listener.
type proxy struct {
	addr string
	srv  *server.Server
	logs *proxytest.SyncBuffer
}

// startProxy builds the proxy that the YAML text describes and serves it
// until the test ends; then it drains it and closes its upstreams. Its
// logs go to a buffer shown when the test failed.
func startProxy(t testing.TB, yaml string) *proxy {
	t.Helper()
	logs := &proxytest.SyncBuffer{}
	cfg, err := config.Load(writeFile(t, "manifold.yaml", yaml))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Listeners) != 1 {
		t.Fatalf("startProxy serves one listener, the config has %d", len(cfg.Listeners))
	}
	built, err := config.Build(cfg, config.Options{Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", cfg.Listeners[0].Address)
	if err != nil {
		_ = built.Close()
		t.Fatal(err)
	}
	p := &proxy{addr: lis.Addr().String(), srv: built.Servers[0], logs: logs}
	served := make(chan error, 1)
	go func() { served <- p.srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := p.srv.Shutdown(ctx); err != nil {
			t.Errorf("proxy shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("proxy serve: %v", err)
		}
		_ = built.Close()
		if t.Failed() {
			t.Logf("proxy logs:\n%s", logs.String())
		}
	})
	return p
}

// oneToOne is the config of a proxy on a loopback port that routes every
// call to one cluster, whose YAML body (target, addresses, …) is given.
func oneToOne(cluster string) string {
	return "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: backend, " + cluster + "}]\nroutes: [{name: all, route: backend}]\n"
}

// target is the cluster YAML for one upstream address.
func target(addr string) string { return `target: "passthrough:///` + addr + `"` }

// running is the manifold command line run in-process with manifold.Run.
type running struct {
	addr, admin string
	logs        *proxytest.SyncBuffer
	cancel      context.CancelFunc
	exited      chan int
	stopOnce    sync.Once
	code        int
}

var (
	servingRE = regexp.MustCompile(`msg="manifold serving" listen=(\S+)|"msg":"manifold serving","listen":"([^"]+)"`)
	adminRE   = regexp.MustCompile(`msg="admin serving" listen=(\S+)|"msg":"admin serving","listen":"([^"]+)"`)
)

// runManifold runs manifold.Run with args, as the binary would, until the
// test ends (or stop), and returns once it serves. Its whole log output is
// kept.
func runManifold(t testing.TB, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{logs: &proxytest.SyncBuffer{}, cancel: cancel, exited: make(chan int, 1)}
	go func() { r.exited <- manifold.Run(ctx, args, r.logs) }()
	t.Cleanup(func() {
		if code := r.stop(); code != 0 {
			t.Errorf("manifold exited with %d:\n%s", code, r.logs.String())
		}
	})
	for deadline := time.Now().Add(guard); ; time.Sleep(5 * time.Millisecond) {
		if m := servingRE.FindStringSubmatch(r.logs.String()); m != nil {
			r.addr = m[1] + m[2]
			if m := adminRE.FindStringSubmatch(r.logs.String()); m != nil {
				r.admin = m[1] + m[2]
			}
			return r
		}
		select {
		case code := <-r.exited:
			r.exited <- code
			t.Fatalf("manifold exited with %d:\n%s", code, r.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("manifold did not serve:\n%s", r.logs.String())
		}
	}
}

// stop cancels Run's context (SIGTERM, to the binary), waits for it to
// drain and returns its exit code.
func (r *running) stop() int {
	r.stopOnce.Do(func() {
		r.cancel()
		r.code = <-r.exited
	})
	return r.code
}

// dial returns a grpc client connection to addr, closed when the test
// ends.
func dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// unary makes one UnaryCall with body as payload, bounded by guard.
func unary(cc grpc.ClientConnInterface, body string, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	_, err := testgrpc.NewTestServiceClient(cc).UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte(body)}}, opts...)
	return err
}

// mustWork fails the test unless a unary call through cc succeeds: the
// proxy still serves after whatever came before.
func mustWork(t testing.TB, cc grpc.ClientConnInterface) {
	t.Helper()
	if err := unary(cc, "good"); err != nil {
		t.Fatalf("the next good call failed: %v", err)
	}
}

// eventually polls cond until it holds or guard passes.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(guard); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", guard, what)
		}
	}
}

// tally counts the status codes of calls made by concurrent workers, with
// one message kept per code.
type tally struct {
	mu    sync.Mutex
	codes map[codes.Code]int
	msgs  map[codes.Code]string
}

func newTally() *tally {
	return &tally{codes: map[codes.Code]int{}, msgs: map[codes.Code]string{}}
}

func (c *tally) add(err error) {
	s := status.Convert(err)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes[s.Code()]++
	if _, ok := c.msgs[s.Code()]; !ok {
		c.msgs[s.Code()] = s.Message()
	}
}

func (c *tally) get(code codes.Code) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.codes[code]
}

// others returns the codes outside allowed, with their first message.
func (c *tally) others(allowed ...codes.Code) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for code, n := range c.codes {
		ok := false
		for _, a := range allowed {
			ok = ok || code == a
		}
		if !ok {
			out = append(out, fmt.Sprintf("%v ×%d (%q)", code, n, c.msgs[code]))
		}
	}
	sort.Strings(out)
	return out
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for code, n := range c.codes {
		out = append(out, fmt.Sprintf("%v=%d", code, n))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

// load runs n workers, each calling call in a loop until stop is closed.
// wait returns when every worker has returned.
func load(n int, stop <-chan struct{}, call func()) (wait func()) {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				call()
			}
		})
	}
	return wg.Wait
}

// waitOrHang waits for wait to return within guard and fails the test if
// it does not: some call hung.
func waitOrHang(t testing.TB, what string, wait func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * guard):
		t.Fatalf("%s: still running after %v: a call hangs", what, 2*guard)
	}
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
