package config_test

import (
	"context"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestClusterKinds: a cluster's kinds reach its route terminal. The test
// marks the client-streaming method unary on purpose, the misconfiguration
// the docs warn of: only the first request message then reaches the
// backend, which shows the single-request path is taken. Correct kinds
// give every answer unchanged (filters/route's TestSingleRequestSameAnswers).
func TestClusterKinds(t *testing.T) {
	backend, _ := testbackend.Start(t, &testbackend.Service{})
	file := `listeners: [{address: 127.0.0.1:0}]
clusters:
  - name: backend
    target: passthrough:///${BACKEND}
    kinds:
      - {match: /grpc.testing.TestService/UnaryCall, kind: unary}
      - {match: /grpc.testing.TestService/StreamingInputCall, kind: "${INPUT_KIND}"}
routes: [{name: r, route: backend}]
`
	for _, tc := range []struct {
		kind string
		want int32 // aggregated payload size the backend reports
	}{
		{"client_streaming", 1 + 10 + 100},
		{"unary", 1},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			cfg, err := config.Parse("m.yaml", []byte(file), env(map[string]string{"BACKEND": backend, "INPUT_KIND": tc.kind}))
			if err != nil {
				t.Fatal(err)
			}
			client := testgrpc.NewTestServiceClient(proxytest.Dial(t, serveProxy(t, cfg)))
			ctx := context.Background()
			if resp, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("hi")}}); err != nil || string(resp.GetPayload().GetBody()) != "hi" {
				t.Fatalf("UnaryCall = %v, %v", resp, err)
			}
			s, err := client.StreamingInputCall(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range []int{1, 10, 100} {
				if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: &testgrpc.Payload{Body: make([]byte, n)}}); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := s.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.GetAggregatedPayloadSize(); got != tc.want {
				t.Errorf("backend summed %d bytes, want %d", got, tc.want)
			}
		})
	}
}
