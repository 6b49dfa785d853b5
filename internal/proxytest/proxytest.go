package proxytest

import (
	"bytes"
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// Env is a running proxy with its upstream and clients.
type Env struct {
	// ProxyAddr and BackendAddr are the loopback addresses.
	ProxyAddr, BackendAddr string
	// Proxy is the running proxy.
	Proxy *server.Server
	// Cluster is the proxy's upstream connection.
	Cluster *cluster.Cluster
	// ProxyConn and DirectConn are client connections to the proxy and
	// to the backend.
	ProxyConn, DirectConn *grpc.ClientConn
	// Client calls through the proxy; Direct calls the backend.
	Client, Direct testgrpc.TestServiceClient
}

// Config adjusts Start.
type Config struct {
	// Filters is the proxy's chain.
	Filters []pipeline.Filter
	// Cluster is the upstream config; Target defaults to the backend.
	Cluster cluster.Config
	// ServerOptions are passed to server.New.
	ServerOptions []server.Option
	// DialOptions are added to the client connections.
	DialOptions []grpc.DialOption
	// Terminal replaces the route terminal when set.
	Terminal func(c *cluster.Cluster) pipeline.Handler
}

// Start serves a proxy in front of backendAddr until the test ends. An empty
// backendAddr is an error; use an address where nothing listens to test
// unreachable upstreams.
func Start(t testing.TB, backendAddr string, cfg Config) *Env {
	t.Helper()
	cc := cfg.Cluster
	if cc.Name == "" {
		cc.Name = "backend"
	}
	if cc.Target == "" && len(cc.Addresses) == 0 {
		cc.Target = "passthrough:///" + backendAddr
	}
	cl, err := cluster.New(cc)
	if err != nil {
		t.Fatal(err)
	}
	var terminal pipeline.Handler = route.New(cl)
	if cfg.Terminal != nil {
		terminal = cfg.Terminal(cl)
	}
	chain, err := pipeline.Build(cfg.Filters, terminal)
	if err != nil {
		t.Fatal(err)
	}
	// serve registers the shutdown before the clients' cleanups, so it runs
	// after they closed.
	srv, addr := serve(t, chain, append([]server.Option{server.WithCloser(cl)}, cfg.ServerOptions...)...)
	env := &Env{ProxyAddr: addr, BackendAddr: backendAddr, Proxy: srv, Cluster: cl}
	env.ProxyConn = Dial(t, env.ProxyAddr, cfg.DialOptions...)
	env.Client = testgrpc.NewTestServiceClient(env.ProxyConn)
	if backendAddr != "" {
		env.DirectConn = Dial(t, backendAddr, cfg.DialOptions...)
		env.Direct = testgrpc.NewTestServiceClient(env.DirectConn)
	}
	return env
}

// Dial returns a plaintext client connection to addr, closed when the test
// ends.
func Dial(t testing.TB, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Serve runs h in a server.Server on a loopback port until the test ends
// (then shuts it down gracefully) and returns the address.
func Serve(t testing.TB, h pipeline.Handler, opts ...server.Option) string {
	t.Helper()
	_, addr := serve(t, h, opts...)
	return addr
}

func serve(t testing.TB, h pipeline.Handler, opts ...server.Option) (*server.Server, string) {
	t.Helper()
	srv, err := server.New(h, opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return srv, lis.Addr().String()
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers, such as a log
// handler, and the test reading it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
