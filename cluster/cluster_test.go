package cluster_test

import (
	"context"
	"crypto/tls"
	"math"
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
		{"circuit breakers", cluster.Config{Name: "c", Target: "backend:9090", CircuitBreakers: cluster.CircuitBreakers{MaxRequests: 100, MaxPending: 10}}, ""},
		{"retry with defaults", cluster.Config{Name: "c", Target: "backend:9090", Retry: []cluster.RetryPolicy{{Methods: []string{"/a.B/M", "c.D"}}}}, ""},
		{"retry in full", cluster.Config{Name: "c", Addresses: []string{"a:1"}, RetryBufferSize: 1 << 20, Retry: []cluster.RetryPolicy{
			{Methods: []string{"a.B"}, MaxAttempts: 5, InitialBackoff: 250 * time.Millisecond, MaxBackoff: 1500 * time.Millisecond, BackoffMultiplier: 1.5, RetryableStatusCodes: []string{"unavailable", "RESOURCE_EXHAUSTED", "Aborted"}},
			{Methods: []string{"/a.B/M"}, MaxAttempts: 2, InitialBackoff: 2 * time.Second},
		}, RetryThrottling: &cluster.RetryThrottling{MaxTokens: 1000, TokenRatio: 0.001}}, ""},
		{"tls max 1.3", cluster.Config{Name: "c", Target: "backend:9090", TLS: &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS13}}, ""},

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
		{"tls max below 1.2", cluster.Config{Name: "c", Target: "b:1", TLS: &tls.Config{MaxVersion: tls.VersionTLS11}}, `cluster "c": tls: MaxVersion TLS 1.1 is below TLS 1.2`},
		{"negative max_requests", cluster.Config{Name: "c", Target: "b:1", CircuitBreakers: cluster.CircuitBreakers{MaxRequests: -1}}, `cluster "c": circuit_breakers.max_requests: must not be negative`},
		{"negative max_pending", cluster.Config{Name: "c", Target: "b:1", CircuitBreakers: cluster.CircuitBreakers{MaxPending: -1}}, "circuit_breakers.max_pending: must not be negative"},
		{"retry without methods", retryConfig(cluster.RetryPolicy{}), `cluster "c": retry[0].methods: at least one method or service is required`},
		{"retry empty method", retryConfig(cluster.RetryPolicy{Methods: []string{""}}), `retry[0].methods[0]: "" is not a service name`},
		{"retry method without name", retryConfig(cluster.RetryPolicy{Methods: []string{"/a.B"}}), `retry[0].methods[0]: "/a.B" is not /pkg.Service/Method`},
		{"retry method with empty service", retryConfig(cluster.RetryPolicy{Methods: []string{"/a.B/M", "//M"}}), `retry[0].methods[1]: "//M" is not /pkg.Service/Method`},
		{"retry method too long", retryConfig(cluster.RetryPolicy{Methods: []string{"/a.B/M/x"}}), `"/a.B/M/x" is not /pkg.Service/Method`},
		{"retry method without slash", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B/M"}}), `"a.B/M" is not a service name (pkg.Service) or /pkg.Service/Method`},
		{"retry wildcard", retryConfig(cluster.RetryPolicy{Methods: []string{"*"}}), `"*" is not a method or service name`},
		{"retry method twice", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}}, cluster.RetryPolicy{Methods: []string{"/a.B/M", "a.B"}}), `retry[1].methods[1]: "a.B" is already in retry[0]`},
		{"retry one attempt", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, MaxAttempts: 1}), "retry[0].max_attempts: must be 2 to 5, not 1"},
		{"retry six attempts", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, MaxAttempts: 6}), "retry[0].max_attempts: must be 2 to 5, not 6"},
		{"retry negative initial_backoff", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, InitialBackoff: -1}), "retry[0].initial_backoff: must not be negative"},
		{"retry negative max_backoff", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, MaxBackoff: -1}), "retry[0].max_backoff: must not be negative"},
		{"retry max_backoff below initial", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, InitialBackoff: time.Second, MaxBackoff: time.Millisecond}), "retry[0].max_backoff: 1ms is less than initial_backoff 1s"},
		{"retry negative multiplier", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, BackoffMultiplier: -2}), "retry[0].backoff_multiplier: must be a positive number"},
		{"retry NaN multiplier", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, BackoffMultiplier: math.NaN()}), "retry[0].backoff_multiplier: must be a positive number"},
		{"retry unknown code", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, RetryableStatusCodes: []string{"UNAVAILABLE", "UNAVAILBLE"}}), `retry[0].retryable_status_codes[1]: "UNAVAILBLE" is not a status code name`},
		{"retry code number", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, RetryableStatusCodes: []string{"14"}}), `retry[0].retryable_status_codes[0]: "14" is not a status code name`},
		{"retry empty code", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, RetryableStatusCodes: []string{""}}), `retry[0].retryable_status_codes[0]: "" is not a status code name`},
		{"retry OK", retryConfig(cluster.RetryPolicy{Methods: []string{"a.B"}, RetryableStatusCodes: []string{"ok"}}), "retry[0].retryable_status_codes[0]: OK is not an error"},
		{"throttling without tokens", cluster.Config{Name: "c", Target: "b:1", RetryThrottling: &cluster.RetryThrottling{TokenRatio: 0.1}}, "retry_throttling.max_tokens: must be 1 to 1000, not 0"},
		{"throttling too many tokens", cluster.Config{Name: "c", Target: "b:1", RetryThrottling: &cluster.RetryThrottling{MaxTokens: 1001, TokenRatio: 0.1}}, "retry_throttling.max_tokens: must be 1 to 1000, not 1001"},
		{"throttling without ratio", cluster.Config{Name: "c", Target: "b:1", RetryThrottling: &cluster.RetryThrottling{MaxTokens: 10}}, "retry_throttling.token_ratio: must be at least 0.001"},
		{"throttling ratio too fine", cluster.Config{Name: "c", Target: "b:1", RetryThrottling: &cluster.RetryThrottling{MaxTokens: 10, TokenRatio: 0.0001}}, "retry_throttling.token_ratio: must be at least 0.001"},
		{"negative retry buffer", cluster.Config{Name: "c", Target: "b:1", RetryBufferSize: -1}, "retry_buffer_size: must not be negative"},
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

// retryConfig returns a valid cluster config with the given retry policies.
func retryConfig(policies ...cluster.RetryPolicy) cluster.Config {
	return cluster.Config{Name: "c", Target: "backend:9090", Retry: policies}
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
