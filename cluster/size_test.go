package cluster_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestMaxMessageSize: a cluster accepts upstream messages up to its limit
// (64 MiB by default, far above grpc-go's 4 MiB) and no further, each way.
func TestMaxMessageSize(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{}, grpc.MaxRecvMsgSize(32<<20), grpc.MaxSendMsgSize(32<<20))
	for _, tc := range []struct {
		limit, size int
		want        codes.Code
	}{
		{0, 8 << 20, codes.OK},
		{1 << 20, 2 << 20, codes.ResourceExhausted},
		{1 << 20, 512 << 10, codes.OK},
	} {
		cl, err := cluster.New(cluster.Config{Name: "b", Target: "passthrough:///" + addr, MaxMessageSize: tc.limit})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err = testgrpc.NewTestServiceClient(cl.Conn()).UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, tc.size)}})
		cancel()
		cl.Close()
		if status.Code(err) != tc.want {
			t.Errorf("limit %d, response %d: %v, want %v", tc.limit, tc.size, err, tc.want)
		}
	}
}
