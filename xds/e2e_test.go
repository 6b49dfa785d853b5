package xds_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/xds"
)

// childEnv marks the child process that runs the end-to-end tests.
const childEnv = "MANIFOLD_XDS_E2E_CHILD"

// TestEndToEnd runs Manifold's one-to-one proxy with an xds:/// cluster
// against an in-process go-control-plane management server.
//
// grpc-go reads GRPC_XDS_BOOTSTRAP and GRPC_XDS_BOOTSTRAP_CONFIG once, when
// the process starts (package init), so a test cannot set them for itself.
// This test therefore reserves the management server's port, writes a
// bootstrap naming it into GRPC_XDS_BOOTSTRAP_CONFIG and runs the same test
// binary again with that environment and the listening socket inherited as
// fd 3: the child exercises exactly the bootstrap path a deployed binary
// uses, and its own TestMain checks it for leaked goroutines.
func TestEndToEnd(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		testEndToEndChild(t)
		return
	}
	if runtime.GOOS == "windows" {
		t.Skip("the child process inherits the management server's socket through ExtraFiles, which Windows lacks")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	sock, err := lis.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer sock.Close()
	bootstrap, err := json.Marshal(map[string]any{
		"node": map[string]any{"id": nodeID},
		"xds_servers": []any{map[string]any{
			"server_uri":      lis.Addr().String(),
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []any{"xds_v3"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := xds.ValidateBootstrap(bootstrap); err != nil {
		t.Fatal(err)
	}

	args := []string{"-test.run=^TestEndToEnd$", "-test.v", "-test.count=1", "-test.timeout=3m"}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, xds.BootstrapFileEnv+"=") && !strings.HasPrefix(kv, xds.BootstrapConfigEnv+"=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, childEnv+"=1", xds.BootstrapConfigEnv+"="+string(bootstrap))
	cmd.ExtraFiles = []*os.File{sock}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child test process: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: TestEndToEnd ")) {
		t.Fatalf("child test process did not run TestEndToEnd:\n%s", out)
	}
	t.Logf("child test process:\n%s", out)
}

// testEndToEndChild runs in the child process, where grpc-go has read the
// bootstrap from GRPC_XDS_BOOTSTRAP_CONFIG. The subtests share the one
// management server the bootstrap names, each with its own service names.
func testEndToEndChild(t *testing.T) {
	if err := xds.CheckBootstrap(); err != nil {
		t.Fatal(err)
	}
	lis, err := net.FileListener(os.NewFile(3, "xds-management-listener"))
	if err != nil {
		t.Fatal(err)
	}
	cp := startControlPlane(t, lis)

	for _, tc := range []struct {
		name    string
		service string
		inline  bool
	}{
		{name: "routes by RDS", service: "users-rds"},
		{name: "inline route configuration", service: "users-inline", inline: true},
	} {
		t.Run(tc.name+": endpoint moves while calls run", func(t *testing.T) {
			testEndpointMove(t, cp, tc.service, tc.inline)
		})
	}
	t.Run("service the control plane does not know", func(t *testing.T) {
		testUnknownService(t, cp)
	})
}

// namedBackend is a TestService backend that answers with its name: unary
// calls in SimpleResponse.Hostname, bidi streams in each payload.
func namedBackend(t *testing.T, name string) string {
	t.Helper()
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(_ context.Context, _ *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			return &testgrpc.SimpleResponse{Hostname: name}, nil
		},
		Bidi: func(stream testgrpc.TestService_FullDuplexCallServer) error {
			for {
				if _, err := stream.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
				if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: []byte(name)}}); err != nil {
					return err
				}
			}
		},
	})
	return addr
}

// tally counts the results of concurrent calls.
type tally struct {
	mu     sync.Mutex
	byHost map[string]int
	failed map[string]int // "code: message" of every failed call
}

func (c *tally) add(host string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		st := status.Convert(err)
		c.failed[fmt.Sprintf("%v: %s", st.Code(), st.Message())]++
		return
	}
	c.byHost[host]++
}

func (c *tally) hosts(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHost[name]
}

// testEndpointMove proxies calls to an xds:/// cluster whose only endpoint
// is backend A, then has the control plane move it to backend B while
// calls run: no call fails, later calls reach B, and a stream opened on A
// before the move keeps working on A until it ends.
func testEndpointMove(t *testing.T, cp *controlPlane, service string, inline bool) {
	addrA, addrB := namedBackend(t, "A"), namedBackend(t, "B")
	cp.service(t, service, inline, addrA)
	cp.push(t)

	env := proxytest.Start(t, "", proxytest.Config{Cluster: cluster.Config{Name: service, Target: xds.Scheme + ":///" + service}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	resp, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if err != nil {
		t.Fatalf("first call through xds:///%s: %v", service, err)
	}
	if resp.GetHostname() != "A" {
		t.Fatalf("first call reached %q, want A", resp.GetHostname())
	}

	// A stream that starts on A before the move.
	stream, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := exchange(t, stream); got != "A" {
		t.Fatalf("stream before the move reached %q, want A", got)
	}

	results := &tally{byHost: map[string]int{}, failed: map[string]int{}}
	stop := make(chan struct{})
	var workers sync.WaitGroup
	for range 4 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
				results.add(resp.GetHostname(), err)
			}
		}()
	}
	stopWorkers := sync.OnceFunc(func() { close(stop); workers.Wait() })
	defer stopWorkers()

	waitUntil(t, ctx, "20 concurrent calls reach A", func() bool { return results.hosts("A") >= 20 })
	cp.endpoints(t, service, addrB)
	cp.push(t)
	waitUntil(t, ctx, "200 concurrent calls reach B after the move", func() bool { return results.hosts("B") >= 200 })
	stopWorkers()

	results.mu.Lock()
	t.Logf("calls while the endpoint moved: %v; failed: %v", results.byHost, results.failed)
	if len(results.failed) > 0 {
		t.Errorf("calls failed while the endpoint moved: %v", results.failed)
	}
	results.mu.Unlock()

	for i := range 20 {
		resp, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err != nil {
			t.Fatalf("call %d after the move: %v", i, err)
		}
		if resp.GetHostname() != "B" {
			t.Fatalf("call %d after the move reached %q, want B", i, resp.GetHostname())
		}
	}

	// The stream opened before the move still runs on A's connection.
	if got := exchange(t, stream); got != "A" {
		t.Fatalf("stream opened before the move answered from %q after it, want A", got)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != io.EOF {
		t.Fatalf("stream end: got %v, want io.EOF (status OK)", err)
	}
}

// exchange sends one message on the stream and returns the answering
// backend's name.
func exchange(t *testing.T, stream testgrpc.TestService_FullDuplexCallClient) string {
	t.Helper()
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return string(resp.GetPayload().GetBody())
}

// testUnknownService calls through a cluster whose Listener the control
// plane does not have: the call fails with UNAVAILABLE instead of hanging.
// grpc-go treats a resource it never received as missing only when its
// watch timer (15 s) expires, so this takes that long; calls made meanwhile
// wait.
func testUnknownService(t *testing.T, cp *controlPlane) {
	cp.push(t) // the snapshot has no Listener "missing"
	env := proxytest.Start(t, "", proxytest.Config{Cluster: cluster.Config{Name: "missing", Target: "xds:///missing"}})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
	if code := status.Code(err); code != codes.Unavailable {
		t.Fatalf("call to xds:///missing: got %v, want UNAVAILABLE", err)
	}
	t.Logf("call to xds:///missing: %v", err)
}

// waitUntil polls cond until it holds or ctx ends (a hang guard).
func waitUntil(t *testing.T, ctx context.Context, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting until %s: %v", what, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}
