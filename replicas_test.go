package manifold

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// replica is one Manifold process run in-process from a config file.
type replica struct {
	addr string
	logs *proxytest.SyncBuffer
	stop func() int // SIGTERM, then wait for the exit code
}

func startReplica(t *testing.T, file string) *replica {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan int, 1)
	r := &replica{logs: &proxytest.SyncBuffer{}}
	go func() { done <- run(ctx, []string{"--config", file}, r.logs, ready) }()
	select {
	case a := <-ready:
		r.addr = a.String()
	case code := <-done:
		cancel()
		t.Fatalf("manifold exited with %d: %s", code, r.logs.String())
	}
	var once sync.Once
	code := 0
	r.stop = func() int {
		once.Do(func() { cancel(); code = <-done })
		return code
	}
	t.Cleanup(func() { r.stop() })
	return r
}

// retryingServiceConfig balances calls over every replica and retries
// UNAVAILABLE, as a client of a replicated proxy should be configured.
const retryingServiceConfig = `{
  "loadBalancingConfig": [{"round_robin": {}}],
  "methodConfig": [{
    "name": [{"service": "grpc.testing.TestService"}],
    "waitForReady": true,
    "retryPolicy": {
      "maxAttempts": 5,
      "initialBackoff": "0.01s",
      "maxBackoff": "0.2s",
      "backoffMultiplier": 2,
      "retryableStatusCodes": ["UNAVAILABLE"]
    }
  }]
}`

// TestReplicas: two Manifold replicas in front of the same two backends,
// and a client balancing round-robin over both replicas with retries on
// UNAVAILABLE. One replica is stopped gracefully under load, then one
// backend is killed under the survivor. No call fails for the retrying
// client, and every failure a plain client sees is UNAVAILABLE, the code
// a retry-enabled client retries: the replicas keep no state that makes one
// of them needed.
func TestReplicas(t *testing.T) {
	var hits [2]atomic.Int64
	var backends [2]*grpc.Server
	var addrs [2]string
	for i := range backends {
		svc := &testbackend.Service{
			Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				hits[i].Add(1)
				return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
			},
		}
		addrs[i], backends[i] = testbackend.Start(t, svc)
	}
	file := writeFile(t, "m.yaml", fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
drain_timeout: 10s
clusters: [{name: backend, addresses: [%q, %q]}]
routes: [{name: all, route: backend}]
`, addrs[0], addrs[1]))
	replicas := []*replica{startReplica(t, file), startReplica(t, file)}

	rb := manual.NewBuilderWithScheme("replicas")
	rb.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: replicas[0].addr}, {Addr: replicas[1].addr}}})
	dial := func(sc string) testgrpc.TestServiceClient {
		cc, err := grpc.NewClient(rb.Scheme()+":///manifold",
			grpc.WithResolvers(rb),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithDefaultServiceConfig(sc))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return testgrpc.NewTestServiceClient(cc)
	}
	retrying := dial(retryingServiceConfig)
	plain := dial(`{"loadBalancingConfig": [{"round_robin": {}}]}`)

	// Load from both clients until stopped, recording every failure.
	var (
		mu          sync.Mutex
		retryFailed []error
		plainFailed = map[codes.Code]int{}
		calls       atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	worker := func(c testgrpc.TestServiceClient, record func(error)) {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("replica")}})
			cancel()
			calls.Add(1)
			if err != nil {
				mu.Lock()
				record(err)
				mu.Unlock()
			}
		}
	}
	for i := 0; i < 3; i++ {
		wg.Add(2)
		go worker(retrying, func(err error) { retryFailed = append(retryFailed, err) })
		go worker(plain, func(err error) { plainFailed[status.Code(err)]++ })
	}
	waitCalls := func(n int64) {
		t.Helper()
		target := calls.Load() + n
		deadline := time.Now().Add(20 * time.Second)
		for calls.Load() < target {
			if time.Now().After(deadline) {
				t.Fatalf("load stalled at %d calls", calls.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}

	waitCalls(200)
	// Graceful stop of replica 0: it drains, the clients move to replica 1.
	if code := replicas[0].stop(); code != 0 {
		t.Fatalf("replica 0 exited with %d: %s", code, replicas[0].logs.String())
	}
	waitCalls(200)
	// Kill backend 0 under the surviving replica: its round robin moves on.
	backends[0].Stop()
	before := hits[1].Load()
	waitCalls(200)
	close(stop)
	wg.Wait()

	if hits[1].Load() <= before {
		t.Errorf("backend 1 served no call after backend 0 died")
	}
	if len(retryFailed) > 0 {
		t.Errorf("%d calls of the retrying client failed, first: %v", len(retryFailed), retryFailed[0])
	}
	for code, n := range plainFailed {
		if code != codes.Unavailable {
			t.Errorf("%d calls of the plain client failed with %v: a retrying client would not retry them", n, code)
		}
	}
	t.Logf("%d calls; plain client failures by code: %v", calls.Load(), plainFailed)
}
