package route_test

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
)

// panickyStream panics when the terminal reads a request.
type panickyStream struct{ pipeline.ServerStream }

func (panickyStream) RecvMsg(any) error { panic("wrapped stream broke") }

// TestPanicOnRequestGoroutine: a panic in a stream wrapper on the
// terminal's request goroutine ends the call with INTERNAL instead of
// crashing the process, and the next call works.
func TestPanicOnRequestGoroutine(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	wrap := pipeline.AroundFunc("wrap", func(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
		if call.Inbound.Get("break") != nil {
			s = panickyStream{s}
		}
		return next.Serve(call, s)
	})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{wrap}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := env.Client.FullDuplexCall(withBreak(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("Recv = %v, want Internal", err)
	}
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("next call: %v", err)
	}
}
