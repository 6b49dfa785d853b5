package pipeline_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// TestWaitingRequestHookDoesNotHoldUpTheEnd: a request hook that waits on
// its context (a rate limiter, say) while the upstream fails must not keep
// the client from getting the upstream's status.
func TestWaitingRequestHookDoesNotHoldUpTheEnd(t *testing.T) {
	hookWaiting := make(chan struct{})
	svc := &testbackend.Service{
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			<-hookWaiting
			return status.Error(codes.FailedPrecondition, "upstream gave up")
		},
	}
	addr, _ := testbackend.Start(t, svc)
	n := 0
	wait := &pipeline.Funcs{
		FilterName: "waiter",
		RequestMessage: func(ctx context.Context, _ *pipeline.Call, _ *rawcodec.Frame) error {
			n++
			if n == 2 {
				close(hookWaiting)
				<-ctx.Done() // waits like a rate limiter would
				return ctx.Err()
			}
			return nil
		},
		ResponseEnd: func(context.Context, *pipeline.Call, *pipeline.End) {},
	}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{wait}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil { // reaches the waiting hook
		t.Fatal(err)
	}
	_, err = s.Recv()
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("Recv = %v, want the upstream's FailedPrecondition", err)
	}
}
