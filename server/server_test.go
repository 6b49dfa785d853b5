package server_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestNewErrors checks that New refuses a nil handler and message limits
// that are not positive.
func TestNewErrors(t *testing.T) {
	t.Parallel()
	nop := pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })
	tests := []struct {
		name    string
		handler pipeline.Handler
		opts    []server.Option
		wantErr string
	}{
		{"nil handler", nil, nil, "nil handler"},
		{"zero recv size", nop, []server.Option{server.WithMaxMessageSize(0, 1)}, "max message sizes must be positive"},
		{"zero send size", nop, []server.Option{server.WithMaxMessageSize(1, 0)}, "max message sizes must be positive"},
		{"negative size", nop, []server.Option{server.WithMaxMessageSize(-1, -1)}, "max message sizes must be positive"},
		{"zero header list size", nop, []server.Option{server.WithMaxHeaderListSize(0)}, "max header list size must be positive"},
		{"TLS 1.1", nop, []server.Option{server.WithTLS(&tls.Config{MinVersion: tls.VersionTLS11})}, "TLS MinVersion TLS 1.1 is not allowed"},
		{"valid", nop, []server.Option{server.WithMaxMessageSize(1, 1)}, ""},
		{"no stream limit", nop, []server.Option{server.WithMaxConcurrentStreams(0)}, ""},
		{"stream workers", nop, []server.Option{server.WithStreamWorkers(4)}, ""},
		{"defaults", nop, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := server.New(tt.handler, tt.opts...)
			if tt.wantErr == "" {
				if err != nil || s == nil {
					t.Fatalf("New() = %v, %v; want a server", s, err)
				}
				// A server holds its stream workers from New on.
				if err := s.Shutdown(context.Background()); err != nil {
					t.Errorf("Shutdown of a server that never served: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("New() returned a server with error %v", err)
			}
		})
	}
}

// serve runs a server over handler on loopback until the test ends and
// returns a client connection to it. The cleanup checks that Serve returns
// nil after Shutdown.
func serve(t *testing.T, handler pipeline.Handler, opts ...server.Option) *grpc.ClientConn {
	t.Helper()
	srv, err := server.New(handler, opts...)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve after Shutdown = %v, want nil", err)
		}
	})
	return proxytest.Dial(t, lis.Addr().String())
}

// syncBuffer is the shared concurrent buffer, with the log helpers of
// these tests.
type syncBuffer struct{ proxytest.SyncBuffer }

// TestHandlerPanic checks that a panic in the handler fails only that call,
// with INTERNAL, is logged with the method, and that the server keeps
// serving: the next call is proxied normally.
func TestHandlerPanic(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	c, err := cluster.New(cluster.Config{Name: "backend", Target: "passthrough:///" + addr})
	if err != nil {
		t.Fatal(err)
	}
	forward := route.New(c)
	handler := pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		if len(call.Header.Get("panic")) > 0 {
			panic("boom")
		}
		return forward.Serve(call, stream)
	})
	logs := &syncBuffer{}
	conn := serve(t, handler,
		server.WithLogger(slog.New(slog.NewTextHandler(logs, nil))),
		server.WithCloser(c))
	client := testpb.NewTestServiceClient(conn)
	ctx := testContext(t)

	_, err = client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "panic", "yes"), &testpb.SimpleRequest{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("call whose handler panicked: %v, want code Internal", err)
	}
	if msg := status.Convert(err).Message(); strings.Contains(msg, "boom") {
		t.Errorf("status message %q leaks the panic value to the client", msg)
	}
	if l := logs.String(); !strings.Contains(l, "panic") || !strings.Contains(l, "/grpc.testing.TestService/UnaryCall") || !strings.Contains(l, "boom") {
		t.Errorf("log does not report the panic with its method and value:\n%s", l)
	}

	for i := range 3 {
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("ok")}})
		if err != nil {
			t.Fatalf("call %d after the panic: %v", i, err)
		}
		if got := string(resp.GetPayload().GetBody()); got != "ok" {
			t.Errorf("call %d after the panic: echo %q, want %q", i, got, "ok")
		}
	}
}

// TestHealth checks that the proxy answers the gRPC health service itself,
// without running the chain, and reports NOT_SERVING once Shutdown starts.
func TestHealth(t *testing.T) {
	t.Parallel()
	var chainCalls atomic.Int64
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters: []pipeline.Filter{pipeline.RequestHeadersFunc("count", func(context.Context, *pipeline.Call) error {
			chainCalls.Add(1)
			return nil
		})},
	})
	ctx := testContext(t)
	health := healthpb.NewHealthClient(env.ProxyConn)

	resp, err := health.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Check = %v, want SERVING", resp.GetStatus())
	}
	if n := chainCalls.Load(); n != 0 {
		t.Errorf("health check went through the chain (%d calls)", n)
	}

	// A watch opened before Shutdown sees the change, then the server ends
	// it so that the graceful stop can finish without the client's help.
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := health.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first Watch status = %v, %v; want SERVING", m.GetStatus(), err)
	}
	shutdown := make(chan error, 1)
	go func() { shutdown <- env.Proxy.Shutdown(ctx) }()
	if m, err := watch.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("Watch status after Shutdown = %v, %v; want NOT_SERVING", m.GetStatus(), err)
	}
	if _, err := watch.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("Watch after draining began = %v, want Unavailable", err)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestMessageSize checks the default limit lets a 16 MiB message through
// the proxy both ways (above grpc-go's 4 MiB default on either of the
// proxy's sides), and that WithMaxMessageSize makes the proxy refuse larger
// messages each way with RESOURCE_EXHAUSTED.
func TestMessageSize(t *testing.T) {
	t.Parallel()
	const big = 32 << 20
	addr, _ := testbackend.Start(t, &testbackend.Service{},
		grpc.MaxRecvMsgSize(big), grpc.MaxSendMsgSize(big))
	callOpts := grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(big), grpc.MaxCallSendMsgSize(big))

	t.Run("default passes 16 MiB", func(t *testing.T) {
		t.Parallel()
		env := proxytest.Start(t, addr, proxytest.Config{DialOptions: []grpc.DialOption{callOpts}})
		ctx := testContext(t)
		body := bytes.Repeat([]byte("0123456789abcdef"), 1<<20) // 16 MiB
		resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
		if err != nil {
			t.Fatalf("16 MiB echo through the proxy: %v", err)
		}
		if !bytes.Equal(resp.GetPayload().GetBody(), body) {
			t.Errorf("16 MiB echo came back changed (%d bytes)", len(resp.GetPayload().GetBody()))
		}
	})

	t.Run("limited", func(t *testing.T) {
		t.Parallel()
		env := proxytest.Start(t, addr, proxytest.Config{
			DialOptions:   []grpc.DialOption{callOpts},
			ServerOptions: []server.Option{server.WithMaxMessageSize(1<<20, 1<<20)},
		})
		ctx := testContext(t)
		_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 2<<20)}})
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("2 MiB request to a 1 MiB proxy: %v, want code ResourceExhausted", err)
		}

		stream, err := env.Client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 2 << 20}},
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("2 MiB response from a 1 MiB proxy: %v, want code ResourceExhausted", err)
		}

		// Within the limit, both ways work.
		resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: make([]byte, 512<<10)}})
		if err != nil || len(resp.GetPayload().GetBody()) != 512<<10 {
			t.Errorf("512 KiB echo through a 1 MiB proxy: %d bytes, %v", len(resp.GetPayload().GetBody()), err)
		}
	})
}

// TestForwardedFor checks that the proxy appends the client's address to
// x-forwarded-for, keeping earlier proxies' entries, unless turned off.
func TestForwardedFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		on   bool
		in   []string // the client's x-forwarded-for
		want []string // what the backend sees
	}{
		{"added", true, nil, []string{"127.0.0.1"}},
		{"appended", true, []string{"1.2.3.4"}, []string{"1.2.3.4, 127.0.0.1"}},
		{"appended to several", true, []string{"1.2.3.4", "5.6.7.8"}, []string{"1.2.3.4, 5.6.7.8, 127.0.0.1"}},
		{"off", false, nil, nil},
		{"off keeps the client's", false, []string{"1.2.3.4"}, []string{"1.2.3.4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			saw := make(chan []string, 1)
			addr, _ := testbackend.Start(t, &testbackend.Service{
				Unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
					md, _ := metadata.FromIncomingContext(ctx)
					saw <- md.Get("x-forwarded-for")
					return &testpb.SimpleResponse{}, nil
				},
			})
			env := proxytest.Start(t, addr, proxytest.Config{
				ServerOptions: []server.Option{server.WithForwardedFor(tt.on)},
			})
			ctx := testContext(t)
			for _, v := range tt.in {
				ctx = metadata.AppendToOutgoingContext(ctx, "x-forwarded-for", v)
			}
			if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			if got := <-saw; !slices.Equal(got, tt.want) {
				t.Errorf("backend saw x-forwarded-for %q, want %q", got, tt.want)
			}
		})
	}
}

// countingCloser counts its Close calls.
type countingCloser struct{ n atomic.Int64 }

func (c *countingCloser) Close() error {
	c.n.Add(1)
	return nil
}

// failingCloser fails to close.
type failingCloser struct{ err error }

func (c failingCloser) Close() error { return c.err }

var _ io.Closer = (*countingCloser)(nil)

// blockingBackend starts a backend whose unary handler signals entered,
// then blocks until release is closed (and answers) or its context ends.
func blockingBackend(t *testing.T) (addr string, entered <-chan struct{}, release chan<- struct{}) {
	t.Helper()
	in := make(chan struct{}, 1)
	rel := make(chan struct{})
	addr, _ = testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			in <- struct{}{}
			select {
			case <-rel:
				return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	return addr, in, rel
}

// waitRefused makes calls on fresh connections to addr until one is
// refused; calls that get through reach the chain, which answers
// FAILED_PRECONDITION through the probe filter.
func waitRefused(t *testing.T, addr string) error {
	t.Helper()
	ctx := testContext(t)
	for {
		conn := proxytest.Dial(t, addr)
		_, err := testpb.NewTestServiceClient(conn).EmptyCall(ctx, &testpb.Empty{})
		_ = conn.Close()
		if status.Code(err) != codes.FailedPrecondition {
			return err
		}
		select {
		case <-ctx.Done():
			t.Fatal("the proxy kept accepting calls after Shutdown began")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// probe answers EmptyCall itself, so waitRefused can tell an accepted call
// from a refused one.
var probe = pipeline.RequestHeadersFunc("probe", func(_ context.Context, call *pipeline.Call) error {
	if call.Method == "/grpc.testing.TestService/EmptyCall" {
		return status.Error(codes.FailedPrecondition, "probe accepted")
	}
	return nil
})

// TestShutdownDrains checks that Shutdown lets a call in flight finish,
// refuses new calls meanwhile, returns nil once the call ended, and closes
// the closers once.
func TestShutdownDrains(t *testing.T) {
	t.Parallel()
	addr, entered, release := blockingBackend(t)
	closer := &countingCloser{}
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters:       []pipeline.Filter{probe},
		ServerOptions: []server.Option{server.WithCloser(closer)},
	})
	ctx := testContext(t)

	type result struct {
		resp *testpb.SimpleResponse
		err  error
	}
	inflight := make(chan result, 1)
	go func() {
		resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("in flight")}})
		inflight <- result{resp, err}
	}()
	<-entered

	shutdown := make(chan error, 1)
	go func() { shutdown <- env.Proxy.Shutdown(ctx) }()

	if err := waitRefused(t, env.ProxyAddr); status.Code(err) != codes.Unavailable {
		t.Errorf("new call during Shutdown: %v, want code Unavailable", err)
	}
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v while a call was in flight", err)
	case r := <-inflight:
		t.Fatalf("call in flight ended before release: %v", r.err)
	default:
	}
	if n := closer.n.Load(); n != 0 {
		t.Errorf("closer closed %d times while a call was in flight", n)
	}

	close(release)
	r := <-inflight
	if r.err != nil {
		t.Fatalf("call in flight during Shutdown: %v", r.err)
	}
	if got := string(r.resp.GetPayload().GetBody()); got != "in flight" {
		t.Errorf("call in flight answered %q", got)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
	if n := closer.n.Load(); n != 1 {
		t.Errorf("closer closed %d times, want 1", n)
	}

	// A second Shutdown (proxytest's cleanup does one too) closes nothing
	// again.
	if err := env.Proxy.Shutdown(ctx); err != nil {
		t.Errorf("second Shutdown = %v", err)
	}
	if n := closer.n.Load(); n != 1 {
		t.Errorf("closer closed %d times after a second Shutdown, want 1", n)
	}
}

// TestShutdownDeadline checks that when Shutdown's context ends before the
// calls in flight, they are cancelled, Shutdown returns the context's
// error, and the closers are still closed, with their errors reported.
func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	addr, entered, _ := blockingBackend(t)
	closer := &countingCloser{}
	closeErr := errors.New("close failed")
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters:       []pipeline.Filter{probe},
		ServerOptions: []server.Option{server.WithCloser(closer, failingCloser{closeErr})},
	})
	ctx := testContext(t)

	inflight := make(chan error, 1)
	go func() {
		_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
		inflight <- err
	}()
	<-entered

	shutdownCtx, cancelShutdown := context.WithCancel(ctx)
	shutdown := make(chan error, 1)
	go func() { shutdown <- env.Proxy.Shutdown(shutdownCtx) }()
	// Shutdown has begun once new calls are refused; only then end its
	// context.
	_ = waitRefused(t, env.ProxyAddr)
	cancelShutdown()

	err := <-shutdown
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown = %v, want context.Canceled", err)
	}
	if !errors.Is(err, closeErr) {
		t.Errorf("Shutdown = %v, want it to report the closer's error", err)
	}
	if err := <-inflight; err == nil {
		t.Error("call in flight succeeded after Shutdown's context ended")
	} else if c := status.Code(err); c == codes.OK || c == codes.DeadlineExceeded {
		t.Errorf("call in flight: %v, want it cancelled before its own deadline", err)
	}
	if n := closer.n.Load(); n != 1 {
		t.Errorf("closer closed %d times, want 1", n)
	}
}

// TestRegisteredService checks that a service registered on GRPC() is
// answered by the proxy itself with protobuf messages, without the chain,
// while other calls still go through the chain as raw frames.
func TestRegisteredService(t *testing.T) {
	t.Parallel()
	var chainCalls atomic.Int64
	handler := pipeline.HandlerFunc(func(call *pipeline.Call, _ pipeline.ServerStream) error {
		chainCalls.Add(1)
		return status.Errorf(codes.NotFound, "chain got %s", call.Method)
	})
	srv, err := server.New(handler)
	if err != nil {
		t.Fatal(err)
	}
	testpb.RegisterTestServiceServer(srv.GRPC(), &testbackend.Service{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conn := proxytest.Dial(t, lis.Addr().String())
	ctx := testContext(t)

	resp, err := testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("local")}})
	if err != nil {
		t.Fatalf("call to a registered service: %v", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "local" {
		t.Errorf("echo = %q, want %q", got, "local")
	}
	if n := chainCalls.Load(); n != 0 {
		t.Errorf("registered service call went through the chain (%d calls)", n)
	}

	err = conn.Invoke(ctx, "/other.Svc/Do", &testpb.Empty{}, &testpb.Empty{})
	if status.Code(err) != codes.NotFound || chainCalls.Load() != 1 {
		t.Errorf("call to an unregistered service: %v (chain calls %d), want the chain's NotFound", err, chainCalls.Load())
	}
}
