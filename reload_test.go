package manifold

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestReloadUnderLoad: calls keep succeeding across a reload that moves the
// route to another backend; a stream in flight finishes on the old one; an
// invalid file is refused and the running config stays.
func TestReloadUnderLoad(t *testing.T) {
	var hitsA, hitsB atomic.Int64
	count := func(n *atomic.Int64) *testbackend.Service {
		return &testbackend.Service{
			Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				n.Add(1)
				return &testgrpc.SimpleResponse{}, nil
			},
		}
	}
	svcA := count(&hitsA)
	streamOpen := make(chan struct{})
	release := make(chan struct{})
	svcA.Bidi = func(s testgrpc.TestService_FullDuplexCallServer) error {
		close(streamOpen)
		<-release
		return s.Send(&testgrpc.StreamingOutputCallResponse{})
	}
	a, _ := testbackend.Start(t, svcA)
	b, _ := testbackend.Start(t, count(&hitsB))
	cfgText := func(target string) string {
		return "listeners: [{address: 127.0.0.1:0}]\nadmin: {address: 127.0.0.1:0}\nclusters: [{name: backend, target: \"passthrough:///" + target + "\"}]\nroutes: [{name: all, route: backend}]\n"
	}
	file := writeFile(t, "m.yaml", cfgText(a))
	proxyAddr, logs := startRun(t, "--config", file)
	m := regexp.MustCompile(`msg="admin serving" listen=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no admin line: %s", logs.String())
	}
	reload := func() (int, string) {
		resp, err := http.Post("http://"+m[1]+"/reload", "text/plain", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, proxyAddr))

	// A stream on the old config, held open across the reload.
	sctx, scancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer scancel()
	stream, err := client.FullDuplexCall(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	<-streamOpen

	// Load: four callers, every call must succeed.
	stop := make(chan struct{})
	var failed atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
					failed.Add(1)
					t.Errorf("call failed during reload: %v", err)
				}
				cancel()
			}
		}()
	}
	for hitsA.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	if err := os.WriteFile(file, []byte(cfgText(b)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != 200 {
		t.Fatalf("reload: %d %s", code, body)
	}
	for hitsB.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	// An invalid file is refused; calls keep going to B.
	if err := os.WriteFile(file, []byte("listeners: [{address: 127.0.0.1:0}]\nroutes: [{name: all, route: nowhere}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, body := reload(); code != http.StatusUnprocessableEntity || !strings.Contains(body, `no cluster named "nowhere"`) {
		t.Errorf("invalid reload: %d %s", code, body)
	}
	before := hitsB.Load()
	for hitsB.Load() < before+50 {
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d calls failed", failed.Load())
	}
	// The old stream still works on the old config's upstream.
	close(release)
	if _, err := stream.Recv(); err != nil {
		t.Errorf("stream across the reload: %v", err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
}

// TestConfigDrainFinishesStreams: on shutdown in config mode, a stream in
// flight finishes normally within drain_timeout, and the process exits 0.
func TestConfigDrainFinishesStreams(t *testing.T) {
	release := make(chan struct{})
	open := make(chan struct{})
	svc := &testbackend.Service{
		Bidi: func(s testgrpc.TestService_FullDuplexCallServer) error {
			close(open)
			<-release
			for i := 0; i < 3; i++ {
				if err := s.Send(&testgrpc.StreamingOutputCallResponse{}); err != nil {
					return err
				}
			}
			return nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	file := writeFile(t, "m.yaml", "listeners: [{address: 127.0.0.1:0}]\ndrain_timeout: 20s\nlog: {level: debug, format: json}\nclusters: [{name: b, target: \"passthrough:///"+addr+"\"}]\nroutes: [{name: all, route: b}]\n")
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan int, 1)
	logs := &proxytest.SyncBuffer{}
	go func() { done <- run(ctx, []string{"--config", file}, logs, ready) }()
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, (<-ready).String()))
	s, err := client.FullDuplexCall(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testgrpc.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	<-open
	cancel() // SIGTERM
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "manifold draining") && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	close(release)
	for i := 0; i < 3; i++ {
		if _, err := s.Recv(); err != nil {
			t.Fatalf("message %d during the drain: %v", i, err)
		}
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end of the drained stream: %v", err)
	}
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	if !strings.Contains(logs.String(), `"msg":"manifold stopped"`) {
		t.Errorf("no JSON stop line (log section ignored?):\n%s", logs.String())
	}
}
