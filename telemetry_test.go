package manifold

import (
	"context"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// collector is a fake OTLP/gRPC trace collector.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	mu    sync.Mutex
	spans []string // "kind name cluster"
}

func (c *collector) Export(_ context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			for _, s := range ss.GetSpans() {
				line := s.GetKind().String() + " " + s.GetName()
				for _, a := range s.GetAttributes() {
					if a.GetKey() == "manifold.cluster" {
						line += " " + a.GetValue().GetStringValue()
					}
				}
				c.spans = append(c.spans, line)
			}
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

// TestQuickModeExportsTraces: with only OTEL_EXPORTER_OTLP_ENDPOINT set,
// quick mode exports a server span per call and a client span per upstream
// call, and /metrics serves the rpc metrics.
func TestQuickModeExportsTraces(t *testing.T) {
	col := &collector{}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(srv, col)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+lis.Addr().String())
	t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "50")

	backend, _ := testbackend.Start(t, &testbackend.Service{})
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan net.Addr, 1)
	done := make(chan int, 1)
	logs := &proxytest.SyncBuffer{}
	go func() {
		done <- run(ctx, []string{"--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--upstream", backend}, logs, ready)
	}()
	addr := (<-ready).String()
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, addr))
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if _, err := client.UnaryCall(cctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`msg="admin serving" listen=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no admin line: %s", logs.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"rpc_server_call_duration", "rpc_client_call_duration"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s:\n%s", want, body)
		}
	}
	cancel() // stops the proxy, which flushes its spans
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, logs.String())
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	got := strings.Join(col.spans, "\n")
	if !strings.Contains(got, "SPAN_KIND_SERVER grpc.testing.TestService/UnaryCall") ||
		!strings.Contains(got, "SPAN_KIND_CLIENT grpc.testing.TestService/UnaryCall upstream") {
		t.Errorf("exported spans:\n%s", got)
	}
}
