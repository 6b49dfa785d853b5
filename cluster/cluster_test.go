package cluster_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestValidate checks every rule of Config.Validate, and that New refuses
// what Validate refuses.
func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     cluster.Config
		wantErr string // substring; "" for valid
	}{
		{"target", cluster.Config{Name: "c", Target: "dns:///backend:9090"}, ""},
		{"bare target", cluster.Config{Name: "c", Target: "backend:9090"}, ""},
		{"addresses", cluster.Config{Name: "c", Addresses: []string{"10.0.0.1:9090", "[::1]:9090", "backend:9090"}}, ""},
		{"round_robin", cluster.Config{Name: "c", Target: "backend:9090", LoadBalancing: "round_robin"}, ""},
		{"pick_first", cluster.Config{Name: "c", Addresses: []string{"a:1"}, LoadBalancing: "pick_first"}, ""},
		{"timeout", cluster.Config{Name: "c", Target: "backend:9090", ConnectTimeout: time.Second}, ""},

		{"missing name", cluster.Config{Target: "backend:9090"}, "name: required"},
		{"neither target nor addresses", cluster.Config{Name: "c"}, `cluster "c": one of target and addresses is required`},
		{"empty addresses", cluster.Config{Name: "c", Addresses: []string{}}, "one of target and addresses is required"},
		{"both target and addresses", cluster.Config{Name: "c", Target: "backend:9090", Addresses: []string{"a:1"}}, "target and addresses are exclusive"},
		{"empty address", cluster.Config{Name: "c", Addresses: []string{"a:1", ""}}, "addresses[1]"},
		{"address is a URI", cluster.Config{Name: "c", Addresses: []string{"dns:///a:1"}}, "addresses[0]"},
		{"address without port", cluster.Config{Name: "c", Addresses: []string{"a:1", "backend"}}, "addresses[1]"},
		{"address with empty port", cluster.Config{Name: "c", Addresses: []string{"backend:"}}, "addresses[0]"},
		{"address ipv6 without brackets", cluster.Config{Name: "c", Addresses: []string{"::1:9090"}}, "addresses[0]"},
		{"bad lb policy", cluster.Config{Name: "c", Target: "backend:9090", LoadBalancing: "random"}, `load_balancing: unknown policy "random"`},
		{"negative timeout", cluster.Config{Name: "c", Target: "backend:9090", ConnectTimeout: -time.Second}, "connect_timeout: must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Validate() = nil, want an error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
			c, err := cluster.New(tt.cfg)
			if (err != nil) != (tt.wantErr != "") {
				t.Fatalf("New() error = %v, want error: %v", err, tt.wantErr != "")
			}
			if c != nil {
				if c.Name() != tt.cfg.Name {
					t.Errorf("Name() = %q, want %q", c.Name(), tt.cfg.Name)
				}
				if err := c.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			}
		})
	}
}

// countingBackend starts a backend that counts its unary calls.
func countingBackend(t *testing.T, n *atomic.Int64) string {
	t.Helper()
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			n.Add(1)
			return &testpb.SimpleResponse{}, nil
		},
	})
	return addr
}

// TestStaticAddressesRoundRobin checks that a cluster of static addresses
// balances calls through the proxy round-robin across its backends: once
// both are connected, consecutive calls alternate between them.
func TestStaticAddressesRoundRobin(t *testing.T) {
	t.Parallel()
	var nA, nB atomic.Int64
	addrA := countingBackend(t, &nA)
	addrB := countingBackend(t, &nB)
	env := proxytest.Start(t, addrA, proxytest.Config{
		Cluster: cluster.Config{Name: "static", Addresses: []string{addrA, addrB}},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The balancer adds each backend to the rotation once it is connected;
	// call until both have answered.
	for nA.Load() == 0 || nB.Load() == 0 {
		if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("UnaryCall: %v (calls: a %d, b %d)", err, nA.Load(), nB.Load())
		}
	}
	a0, b0 := nA.Load(), nB.Load()
	const calls = 20
	for range calls {
		if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
	}
	if a, b := nA.Load()-a0, nB.Load()-b0; a != calls/2 || b != calls/2 {
		t.Errorf("%d calls went %d to a and %d to b, want %d each", calls, a, b, calls/2)
	}
}

// TestPickFirst checks that load_balancing pick_first sends every call to
// the first address.
func TestPickFirst(t *testing.T) {
	t.Parallel()
	var nA, nB atomic.Int64
	addrA := countingBackend(t, &nA)
	addrB := countingBackend(t, &nB)
	c, err := cluster.New(cluster.Config{Name: "pf", Addresses: []string{addrA, addrB}, LoadBalancing: "pick_first"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := testpb.NewTestServiceClient(c.Conn())
	for range 10 {
		if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Fatalf("UnaryCall: %v", err)
		}
	}
	if a, b := nA.Load(), nB.Load(); a != 10 || b != 0 {
		t.Errorf("calls went %d to a and %d to b, want all 10 to a", a, b)
	}
}

// unixBackend serves the echo backend on a unix socket in a temporary
// directory and returns the socket's path.
func unixBackend(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if len(dir) > 80 { // unix socket paths are limited to ~104 bytes
		var err error
		if dir, err = os.MkdirTemp("", "mf"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
	}
	path := filepath.Join(dir, "backend.sock")
	lis, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	testpb.RegisterTestServiceServer(srv, &testbackend.Service{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return path
}

// TestTargets checks that grpc target URIs of each kind reach the backend
// through the proxy.
func TestTargets(t *testing.T) {
	t.Parallel()
	tcp, _ := testbackend.Start(t, &testbackend.Service{})
	sock := unixBackend(t)
	tests := []struct {
		name   string
		target string
	}{
		{"passthrough", "passthrough:///" + tcp},
		{"dns", "dns:///" + tcp},
		{"bare host:port", tcp},
		{"unix", "unix://" + sock},
		{"unix relative form", "unix:" + sock},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := proxytest.Start(t, "", proxytest.Config{
				Cluster: cluster.Config{Name: "c", Target: tt.target},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte(tt.name)}})
			if err != nil {
				t.Fatalf("UnaryCall via %s: %v", tt.target, err)
			}
			if got := string(resp.GetPayload().GetBody()); got != tt.name {
				t.Errorf("echo = %q, want %q", got, tt.name)
			}
		})
	}
}

// closedAddr returns a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// silentAddr returns the address of a listener that accepts TCP connections
// and holds them open without ever speaking HTTP/2. The listener and every
// connection are closed when the test ends.
func silentAddr(t *testing.T) string {
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
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return lis.Addr().String()
}

// TestUnreachable checks that a call through the proxy to an upstream that
// refuses connections, or accepts TCP but never answers the HTTP/2
// handshake, fails with UNAVAILABLE well before the call's deadline.
func TestUnreachable(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr func(*testing.T) string
		cfg  cluster.Config
	}{
		{"refused", closedAddr, cluster.Config{}},
		{"refused static address", closedAddr, cluster.Config{Addresses: []string{"placeholder"}}},
		{"no http2", silentAddr, cluster.Config{ConnectTimeout: 300 * time.Millisecond}},
		{"no http2 static address", silentAddr, cluster.Config{ConnectTimeout: 300 * time.Millisecond, Addresses: []string{"placeholder"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := tt.addr(t)
			cfg := tt.cfg
			if len(cfg.Addresses) > 0 {
				cfg.Addresses = []string{addr}
			}
			env := proxytest.Start(t, addr, proxytest.Config{Cluster: cfg})
			for i := range 2 { // the first call connects; the second finds the failure
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
				cancel()
				if status.Code(err) != codes.Unavailable {
					t.Fatalf("call %d: %v, want code Unavailable", i, err)
				}
			}
		})
	}
}

// TestClose checks that Close closes the shared connection: a call in
// flight fails, and later calls fail with CANCELED.
func TestClose(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{})
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			close(entered)
			<-stream.Context().Done()
			return stream.Context().Err()
		},
	})
	c, err := cluster.New(cluster.Config{Name: "c", Target: "passthrough:///" + addr})
	if err != nil {
		t.Fatal(err)
	}
	client := testpb.NewTestServiceClient(c.Conn())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("UnaryCall before Close: %v", err)
	}
	stream, err := client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-entered

	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := stream.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("Recv on a stream in flight at Close: %v, want code Canceled", err)
	}
	if _, err := client.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Canceled {
		t.Errorf("UnaryCall after Close: %v, want code Canceled", err)
	}
}
