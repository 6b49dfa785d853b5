package manifold

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startRun runs the quick-mode proxy in-process until the test ends.
func startRun(t *testing.T, args ...string) (addr string, logs *proxytest.SyncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan int, 1)
	logs = &proxytest.SyncBuffer{}
	if !slices.Contains(args, "--config") {
		args = append([]string{"--listen", "127.0.0.1:0"}, args...)
	}
	go func() { done <- run(ctx, args, logs, ready) }()
	select {
	case a := <-ready:
		addr = a.String()
	case code := <-done:
		cancel()
		t.Fatalf("manifold exited with %d: %s", code, logs.String())
	}
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("manifold exited with %d: %s", code, logs.String())
		}
	})
	return addr, logs
}

func TestFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage: manifold"},
		{nil, 2, "--upstream or --fanout is required"},
		{[]string{"--upstream", "x:1", "--fanout", "a=b:1"}, 2, "exclusive"},
		{[]string{"--upstream", "x:1", "--fanout-policy", "first"}, 2, "need --fanout"},
		{[]string{"--upstream", "x:1", "--protoset", "/nonexistent"}, 1, "--protoset"},
		{[]string{"--fanout", "a=b:1", "--fanout-policy", "most"}, 2, "--fanout-policy"},
		{[]string{"--fanout", "a"}, 1, "not name=target"},
		{[]string{"--fanout", "a=x:1", "--protoset", "/nonexistent"}, 1, "--protoset"},
		{[]string{"--upstream", "x:1", "extra"}, 2, "unexpected arguments"},
		{[]string{"--upstream", "x:1", "--log-format", "xml"}, 2, "not text or json"},
		{[]string{"--nope"}, 2, "flag provided but not defined"},
		{[]string{"--upstream", "x:1", "--max-header-list-size", "0"}, 1, "max header list size must be positive"},
		{[]string{"--upstream", "x:1", "--listen", "256.0.0.1:1"}, 1, "manifold stopped"},
		{[]string{"--config", "m.yaml", "--listen", "127.0.0.1:1", "--admin", "x"}, 2, "--admin, --listen: quick-mode flags"},
	} {
		var out proxytest.SyncBuffer
		if code := run(context.Background(), tc.args, &out, nil); code != tc.code || !strings.Contains(out.String(), tc.want) {
			t.Errorf("run(%q) = %d, output %q; want %d and %q", tc.args, code, out.String(), tc.code, tc.want)
		}
	}
}

// TestStartsBeforeUpstream: the proxy starts with nothing at the upstream,
// answers UNAVAILABLE, and serves once the upstream comes up.
func TestStartsBeforeUpstream(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	upstream := lis.Addr().String()
	lis.Close()

	addr, logs := startRun(t, "--upstream", upstream, "--connect-timeout", "500ms")
	if n := strings.Count(logs.String(), "\n"); n != 1 || !strings.Contains(logs.String(), "manifold serving") {
		t.Errorf("want one start-up line, got %q", logs.String())
	}
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := client.EmptyCall(ctx, &testgrpc.Empty{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("before the upstream: %v, want Unavailable", err)
	}

	lis, err = net.Listen("tcp", upstream)
	if err != nil {
		t.Skipf("port %s was taken meanwhile: %v", upstream, err)
	}
	srv := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(srv, &testbackend.Service{})
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	for {
		_, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("after the upstream came up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestBinarySIGTERM builds the real binary, proxies a call, and checks that
// SIGTERM lets a call in flight finish and exits 0.
func TestBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "manifold")
	build := exec.Command("go", "build", "-o", bin, "./cmd/manifold")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	backendAddr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			if req.GetResponseSize() == 1 {
				entered <- struct{}{}
				<-release
			}
			return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
		},
	})

	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--upstream", backendAddr, "--drain-timeout", "20s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(stderr)
	var addr string
	re := regexp.MustCompile(`listen=(\S+)`)
	for lines.Scan() {
		if m := re.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
			break
		}
	}
	if addr == "" {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatal("no start-up line")
	}
	var rest bytes.Buffer
	copied := make(chan struct{})
	go func() {
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		close(copied)
	}()

	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, addr))
	if _, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	inflight := make(chan error, 1)
	go func() {
		_, err := client.UnaryCall(context.Background(), &testgrpc.SimpleRequest{ResponseSize: 1})
		inflight <- err
	}()
	<-entered
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Give the proxy a moment to start draining, then let the call finish.
	time.Sleep(200 * time.Millisecond)
	close(release)
	if err := <-inflight; err != nil {
		t.Errorf("call in flight during SIGTERM: %v", err)
	}
	<-copied // read every log line before Wait closes the pipe
	err = cmd.Wait()
	if err != nil {
		t.Errorf("manifold exited with %v; logs:\n%s", err, rest.String())
	}
	if !strings.Contains(rest.String(), "manifold stopped") {
		t.Errorf("no stop line in logs:\n%s", rest.String())
	}
	_ = os.Remove(bin)
}

// TestUpstreamProtoset: with --protoset, one-to-one quick mode forwards
// every call kind unchanged (calls the protoset says send one request take
// the single-goroutine path, filters/route TestSingleRequestGoroutine).
func TestUpstreamProtoset(t *testing.T) {
	backend, _ := testbackend.Start(t, &testbackend.Service{})
	addr, _ := startRun(t, "--upstream", backend, "--protoset", proxytest.WriteProtoset(t, testgrpc.File_grpc_testing_test_proto))
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}}); err != nil || string(resp.GetPayload().GetBody()) != "hi" {
		t.Fatalf("UnaryCall = %v, %v", resp, err)
	}
	cs, err := client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 10, 100} {
		if err := cs.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	if resp, err := cs.CloseAndRecv(); err != nil || resp.GetAggregatedPayloadSize() != 111 {
		t.Fatalf("StreamingInputCall = %v, %v; want 111 bytes summed", resp, err)
	}
	ss, err := client.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}, {Size: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 2} {
		m, err := ss.Recv()
		if err != nil || len(m.GetPayload().GetBody()) != want {
			t.Fatalf("server stream message %d: %v, %v", i, m, err)
		}
	}
	if _, err := ss.Recv(); err != io.EOF {
		t.Fatalf("server stream end: %v", err)
	}
}
