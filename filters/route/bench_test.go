package route_test

import (
	"context"
	"fmt"
	"testing"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// BenchmarkUnary compares unary calls made directly with calls through the
// proxy (empty chain), in one process over loopback. allocs/op covers the
// client, the proxy and the backend; the proxied minus the direct figure is
// the proxy's share, and it must not grow with the message size.
func BenchmarkUnary(b *testing.B) {
	addr, _ := testbackend.Start(b, &testbackend.Service{})
	env := proxytest.Start(b, addr, proxytest.Config{})
	for _, size := range []int{16, 64 << 10} {
		req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, size)}}
		for _, path := range []struct {
			name string
			c    testpb.TestServiceClient
		}{{"direct", env.Direct}, {"proxy", env.Client}} {
			b.Run(fmt.Sprintf("%s/%dB", path.name, size), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(2 * size))
				ctx := context.Background()
				for b.Loop() {
					if _, err := path.c.UnaryCall(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStreamPingPong sends one message and receives its echo per
// iteration on one long-lived bidirectional stream.
func BenchmarkStreamPingPong(b *testing.B) {
	addr, _ := testbackend.Start(b, &testbackend.Service{})
	env := proxytest.Start(b, addr, proxytest.Config{})
	for _, size := range []int{16, 64 << 10} {
		req := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: make([]byte, size)}}
		for _, path := range []struct {
			name string
			c    testpb.TestServiceClient
		}{{"direct", env.Direct}, {"proxy", env.Client}} {
			b.Run(fmt.Sprintf("%s/%dB", path.name, size), func(b *testing.B) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				s, err := path.c.FullDuplexCall(ctx)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				b.SetBytes(int64(2 * size))
				for b.Loop() {
					if err := s.Send(req); err != nil {
						b.Fatal(err)
					}
					if _, err := s.Recv(); err != nil {
						b.Fatal(err)
					}
				}
				b.StopTimer()
				_ = s.CloseSend()
				_, _ = s.Recv()
			})
		}
	}
}
