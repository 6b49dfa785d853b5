package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // clients may compress with gzip; the proxy compresses the same way
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/stack"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Server is a running proxy. Create it with [New], start it with [Server.Serve]
// and stop it with [Server.Shutdown].
type Server struct {
	opts   options
	gen    atomic.Pointer[generation]
	grpc   *grpc.Server
	health *drainingHealth

	closeOnce sync.Once
	closeErr  error
}

// New builds a server that sends every call to handler (normally a built
// [pipeline.Chain], or a chain whose terminal is a router).
func New(handler pipeline.Handler, opts ...Option) (*Server, error) {
	if handler == nil {
		return nil, errors.New("server: nil handler")
	}
	o := defaults()
	for _, opt := range opts {
		opt(&o)
	}
	if o.maxRecv <= 0 || o.maxSend <= 0 {
		return nil, fmt.Errorf("server: max message sizes must be positive, got recv %d send %d", o.maxRecv, o.maxSend)
	}
	if o.maxHeaders == 0 {
		return nil, errors.New("server: max header list size must be positive")
	}
	var tlsConfig *tls.Config
	if o.tls != nil {
		var err error
		if tlsConfig, err = serverTLS(o.tls); err != nil {
			return nil, err
		}
	}
	s := &Server{opts: o, health: newDrainingHealth()}
	s.gen.Store(newGeneration(handler, o.counters))
	gopts := []grpc.ServerOption{
		grpc.ForceServerCodecV2(newCodec()),
		grpc.UnknownServiceHandler(s.serve),
		grpc.MaxRecvMsgSize(o.maxRecv),
		grpc.MaxSendMsgSize(o.maxSend),
		grpc.KeepaliveParams(o.keepalive),
		grpc.KeepaliveEnforcementPolicy(o.enforcement),
		grpc.MaxConcurrentStreams(o.maxStreams), // 0: no limit
		grpc.MaxHeaderListSize(o.maxHeaders),
		grpc.NumStreamWorkers(o.streamWorkers),
		// Stop returns only after every handler has returned, so that the
		// closers (upstream connections) outlive the calls that use them.
		grpc.WaitForHandlers(true),
	}
	if tlsConfig != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(tlsConfig)))
	}
	gopts = append(gopts, o.grpcOptions...)
	s.grpc = grpc.NewServer(gopts...)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	return s, nil
}

// GRPC returns the underlying grpc-go server, to register services the proxy
// answers itself. Calls to registered services do not go through the chain.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Health returns the server's health service, to report serving status.
func (s *Server) Health() *health.Server { return s.health.Server }

// Serve accepts connections on lis until Shutdown. It returns nil after a
// Shutdown, or the listener's error.
func (s *Server) Serve(lis net.Listener) error {
	err := s.grpc.Serve(lis)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown stops the server gracefully: it reports NOT_SERVING on the health
// service, stops accepting new calls and waits for the calls in flight. When
// ctx ends first, the remaining calls are cancelled. Then every closer given
// with [WithCloser] is closed. It returns ctx's error if calls had to be
// cancelled, and any error from the closers.
func (s *Server) Shutdown(ctx context.Context) error {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.grpc.Stop()
		<-done
	}
	s.closeOnce.Do(func() {
		var errs []error
		for _, c := range s.opts.closers {
			if cerr := c.Close(); cerr != nil {
				errs = append(errs, cerr)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return errors.Join(err, s.closeErr)
}

// serve is the unknown-service handler: every call not answered by a
// registered service.
func (s *Server) serve(_ any, stream grpc.ServerStream) (err error) {
	stack.Grow() // before the call path deepens: see package stack
	call := pipeline.NewCall(stream)
	defer func() {
		if r := recover(); r != nil {
			s.opts.logger.Error("panic while serving call",
				slog.String("method", call.Method),
				slog.Any("panic", r),
				slog.String("stack", string(debug.Stack())))
			err = status.Error(codes.Internal, "manifold: internal error")
		}
	}()
	if !validMethod(call.Method) {
		return status.Errorf(codes.Unimplemented, "manifold: malformed method name %q", truncate(call.Method, 128))
	}
	if s.opts.forwardedFor {
		call.AppendForwardedFor()
	}
	for {
		g := s.gen.Load()
		if g.enter() {
			defer g.leave()
			if g.counters {
				stream = withCounters(stream)
			}
			err := g.h.Serve(call, stream)
			if md := pipeline.ReplyTrailer(err); len(md) > 0 {
				// A local reply no end hook took over: its trailers go
				// with its status.
				stream.SetTrailer(md)
			}
			return err
		}
		// Retired between the load and enter: a swap happened; take the
		// new handler.
	}
}

// validMethod reports whether m is "/service/method" with two non-empty
// segments, neither "." nor "..", and no percent-encoding or characters
// outside printable ASCII. grpc-go passes any :path to the handler; a path
// like /pkg.Public/../pkg.Admin/Delete must not slip past prefix routes to
// an upstream HTTP layer that would normalize it.
func validMethod(m string) bool {
	if len(m) < 4 || m[0] != '/' {
		return false
	}
	svc, method, ok := strings.Cut(m[1:], "/")
	if !ok || svc == "" || method == "" || strings.Contains(method, "/") {
		return false
	}
	for _, seg := range []string{svc, method} {
		if seg == "." || seg == ".." {
			return false
		}
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c <= 0x20 || c >= 0x7f || c == '%' || c == '\\' {
			return false
		}
	}
	return true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
