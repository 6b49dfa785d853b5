package pipeline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/auth"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/ratelimit"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// interceptorForm builds a filter from a go-grpc-middleware interceptor
// pair, in its stream or its unary form.
type interceptorForm struct {
	name  string
	build func(stream grpc.StreamServerInterceptor, unary grpc.UnaryServerInterceptor) pipeline.Filter
}

var interceptorForms = []interceptorForm{
	{"stream", func(s grpc.StreamServerInterceptor, _ grpc.UnaryServerInterceptor) pipeline.Filter {
		return pipeline.StreamInterceptor("middleware", s)
	}},
	{"unary", func(_ grpc.StreamServerInterceptor, u grpc.UnaryServerInterceptor) pipeline.Filter {
		return pipeline.UnaryInterceptor("middleware", u)
	}},
}

// panicOnEmptyCall is a terminal that panics for EmptyCall and forwards
// everything else to the cluster.
func panicOnEmptyCall(c *cluster.Cluster) pipeline.Handler {
	next := route.New(c)
	return pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		if call.Method == emptyMethod {
			panic("terminal exploded")
		}
		return next.Serve(call, stream)
	})
}

// TestRecoveryInterceptor runs go-grpc-middleware's recovery interceptor as
// a filter in front of a terminal that panics: the client gets the code its
// recovery handler chooses, hook filters on both sides of it see their end
// hooks run, and other calls keep working.
func TestRecoveryInterceptor(t *testing.T) {
	t.Parallel()
	handler := recovery.WithRecoveryHandler(func(p any) error {
		return status.Errorf(codes.Aborted, "recovered: %v", p)
	})
	for _, form := range interceptorForms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			outer := &endRecorder{name: "outer"}
			inner := &endRecorder{name: "inner"}
			env := proxytest.Start(t, addr, proxytest.Config{
				Filters: []pipeline.Filter{
					outer,
					form.build(recovery.StreamServerInterceptor(handler), recovery.UnaryServerInterceptor(handler)),
					inner,
				},
				Terminal: panicOnEmptyCall,
			})
			ctx := callCtx(t)
			_, err := env.Client.EmptyCall(ctx, &testpb.Empty{})
			requireStatus(t, err, status.New(codes.Aborted, "recovered: terminal exploded"))
			if got := outer.statuses(); len(got) != 1 || got[0].Code() != codes.Aborted {
				t.Errorf("outer end hook saw %v, want the recovered status", got)
			}
			if got := inner.statuses(); len(got) != 1 || got[0].Code() != codes.Internal {
				t.Errorf("inner end hook saw %v, want Internal (the panic passing through)", got)
			}
			if err := runUnary(ctx, env.Client); err != nil {
				t.Errorf("call after the panic: %v", err)
			}
		})
	}
}

type subjectKey struct{}

// authenticate is an auth.AuthFunc: it wants "authorization: bearer good"
// and puts the subject "alice" in the context.
func authenticate(ctx context.Context) (context.Context, error) {
	token, err := auth.AuthFromMD(ctx, "bearer")
	if err != nil {
		return nil, err
	}
	if token != "good" {
		return nil, status.Error(codes.Unauthenticated, "bad token")
	}
	return context.WithValue(ctx, subjectKey{}, "alice"), nil
}

func withToken(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer good")
}

// subjectFilters read the subject that authenticate stored, from the
// stream's context in an around filter and from the hook context in a
// request header hook, and forward it upstream.
func subjectFilters() []pipeline.Filter {
	return []pipeline.Filter{
		pipeline.AroundFunc("subject-around", func(call *pipeline.Call, stream pipeline.ServerStream, next pipeline.Handler) error {
			if s, ok := stream.Context().Value(subjectKey{}).(string); ok {
				call.Header.Set("x-subject-around", s)
			}
			return next.Serve(call, stream)
		}),
		pipeline.RequestHeadersFunc("subject-hook", func(ctx context.Context, call *pipeline.Call) error {
			if s, ok := ctx.Value(subjectKey{}).(string); ok {
				call.Header.Set("x-subject-hook", s)
			}
			return nil
		}),
	}
}

// subjectEchoService answers UnaryCall and StreamingOutputCall with the
// subjects the proxy forwarded, in a response header.
func subjectEchoService() *testbackend.Service {
	echo := func(ctx context.Context) error {
		md, _ := metadata.FromIncomingContext(ctx)
		return grpc.SetHeader(ctx, metadata.Pairs(
			"x-seen-around", strings.Join(md.Get("x-subject-around"), ","),
			"x-seen-hook", strings.Join(md.Get("x-subject-hook"), ",")))
	}
	plain := &testbackend.Service{}
	return &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := echo(ctx); err != nil {
				return nil, err
			}
			return plain.UnaryCall(ctx, req)
		},
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			if err := echo(s.Context()); err != nil {
				return err
			}
			return plain.StreamingOutputCall(req, s)
		},
	}
}

// TestAuthInterceptor runs go-grpc-middleware's auth interceptor as a
// filter: without a token the call is Unauthenticated and never reaches the
// backend; with one, the context value it adds reaches later filters, which
// forward it upstream.
func TestAuthInterceptor(t *testing.T) {
	t.Parallel()
	for _, form := range interceptorForms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			svc := subjectEchoService()
			unary := svc.Unary
			svc.Unary = func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
				calls.Add(1)
				return unary(ctx, req)
			}
			addr, _ := testbackend.Start(t, svc)
			filters := append([]pipeline.Filter{
				form.build(auth.StreamServerInterceptor(authenticate), auth.UnaryServerInterceptor(authenticate)),
			}, subjectFilters()...)
			env := proxytest.Start(t, addr, proxytest.Config{Filters: filters})
			ctx := callCtx(t)

			err := runUnary(ctx, env.Client)
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("call without token: %v, want Unauthenticated", err)
			}
			if n := calls.Load(); n != 0 {
				t.Errorf("backend handled %d calls without a token, want 0", n)
			}

			var header metadata.MD
			if err := runUnary(withToken(ctx), env.Client, grpc.Header(&header)); err != nil {
				t.Fatalf("call with token: %v", err)
			}
			if got := header.Get("x-seen-around"); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("backend saw x-subject-around %q, want [alice]", got)
			}
			if got := header.Get("x-seen-hook"); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("backend saw x-subject-hook %q, want [alice]", got)
			}

			header = nil
			if err := runServerStream(withToken(ctx), env.Client, grpc.Header(&header)); err != nil {
				t.Fatalf("server stream with token: %v", err)
			}
			if got := header.Get("x-seen-around"); !slices.Equal(got, []string{"alice"}) {
				t.Errorf("server stream: backend saw x-subject-around %q, want [alice]", got)
			}
		})
	}
}

// TestSelectorInterceptor applies the auth interceptor to UnaryCall only,
// with go-grpc-middleware's selector: other methods need no token.
func TestSelectorInterceptor(t *testing.T) {
	t.Parallel()
	onlyUnaryCall := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
		return c.FullMethod() == unaryMethod
	})
	for _, form := range interceptorForms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{form.build(
				selector.StreamServerInterceptor(auth.StreamServerInterceptor(authenticate), onlyUnaryCall),
				selector.UnaryServerInterceptor(auth.UnaryServerInterceptor(authenticate), onlyUnaryCall),
			)}})
			ctx := callCtx(t)
			if err := runUnary(ctx, env.Client); status.Code(err) != codes.Unauthenticated {
				t.Errorf("UnaryCall without token: %v, want Unauthenticated", err)
			}
			if err := runUnary(withToken(ctx), env.Client); err != nil {
				t.Errorf("UnaryCall with token: %v", err)
			}
			if _, err := env.Client.EmptyCall(ctx, &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
				// The backend does not implement EmptyCall: reaching it
				// proves the selector let the call through.
				t.Errorf("EmptyCall without token: %v, want the backend's Unimplemented", err)
			}
			if err := runServerStream(ctx, env.Client); err != nil {
				t.Errorf("StreamingOutputCall without token: %v", err)
			}
		})
	}
}

// countLimiter is a ratelimit.Limiter that allows max calls, then rejects.
type countLimiter struct {
	max int32
	n   atomic.Int32
}

func (l *countLimiter) Limit(context.Context) error {
	if l.n.Add(1) > l.max {
		return errors.New("no calls left")
	}
	return nil
}

var _ ratelimit.Limiter = (*countLimiter)(nil)

// TestRateLimitInterceptor runs go-grpc-middleware's ratelimit interceptor
// as a filter: two calls pass, the third is ResourceExhausted.
func TestRateLimitInterceptor(t *testing.T) {
	t.Parallel()
	for _, form := range interceptorForms {
		t.Run(form.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			limiter := &countLimiter{max: 2}
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{form.build(
				ratelimit.StreamServerInterceptor(limiter),
				ratelimit.UnaryServerInterceptor(limiter),
			)}})
			ctx := callCtx(t)
			for i := range 2 {
				if err := runUnary(ctx, env.Client); err != nil {
					t.Fatalf("call %d: %v", i+1, err)
				}
			}
			err := runUnary(ctx, env.Client)
			if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), unaryMethod) {
				t.Fatalf("third call: %v, want ResourceExhausted naming %s", err, unaryMethod)
			}
		})
	}
}

// TestUnaryInterceptorPassThrough runs a unary interceptor that only looks:
// it sees the request and response as frames holding the messages, unary
// responses reach the client unchanged, and a server-streaming call still
// delivers every message, in order.
func TestUnaryInterceptorPassThrough(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	var mu sync.Mutex
	var seen []string
	look := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		// The request frame is valid until handler is called, which hands
		// its bytes to the rest of the chain.
		r := describe(req)
		resp, err := handler(ctx, req)
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s req=%s resp=%s err=%v", info.FullMethod, r, describe(resp), err))
		return resp, err
	}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{pipeline.UnaryInterceptor("look", look)}})
	ctx := callCtx(t)

	body := bytes.Repeat([]byte("0123456789"), 30_000)
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}, ResponseSize: 7, FillUsername: true}
	direct, err := env.Direct.UnaryCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	proxied, err := env.Client.UnaryCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(direct, proxied) {
		t.Error("unary response through the unary interceptor differs from the direct one")
	}

	sizes := []int32{5, 0, 70_000, 3, 1}
	streamReq := &testpb.StreamingOutputCallRequest{}
	for _, n := range sizes {
		streamReq.ResponseParameters = append(streamReq.ResponseParameters, &testpb.ResponseParameters{Size: n})
	}
	s, err := env.Client.StreamingOutputCall(ctx, streamReq)
	if err != nil {
		t.Fatal(err)
	}
	var got []int32
	for {
		m, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("server stream: %v", err)
		}
		got = append(got, int32(len(m.GetPayload().GetBody())))
	}
	if !slices.Equal(got, sizes) {
		t.Errorf("server stream sizes %v, want %v", got, sizes)
	}

	mu.Lock()
	defer mu.Unlock()
	want := []string{
		fmt.Sprintf("%s req=frame of %d bytes resp=frame of %d bytes err=<nil>", unaryMethod, proto.Size(req), proto.Size(direct)),
		// A streaming response is sent as it comes: the interceptor gets
		// no response.
		fmt.Sprintf("%s req=frame of %d bytes resp=<nil> err=<nil>", serverStreamMethod, proto.Size(streamReq)),
	}
	if !slices.Equal(seen, want) {
		t.Errorf("interceptor saw\n %q\nwant\n %q", seen, want)
	}
}

// describe tells what a unary interceptor got as a request or response.
func describe(v any) string {
	f, ok := v.(*rawcodec.Frame)
	if !ok || f == nil {
		return fmt.Sprintf("%T", v)
	}
	return fmt.Sprintf("frame of %d bytes", f.Len())
}

// TestUnaryInterceptorReplaces runs a unary interceptor that replaces the
// request it passes on and the response it returns: the backend and the
// client see the replacements.
func TestUnaryInterceptorReplaces(t *testing.T) {
	t.Parallel()
	var backendSaw atomic.Value
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			backendSaw.Store(string(req.GetPayload().GetBody()))
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
	})
	rewrite := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		in := new(testpb.SimpleRequest)
		if err := proto.Unmarshal(req.(*rawcodec.Frame).Bytes(), in); err != nil {
			return nil, err
		}
		in.Payload.Body = append(in.Payload.Body, " (rewritten request)"...)
		b, err := proto.Marshal(in)
		if err != nil {
			return nil, err
		}
		resp, err := handler(ctx, rawcodec.FromBytes(b))
		if err != nil {
			return nil, err
		}
		f := resp.(*rawcodec.Frame)
		out := new(testpb.SimpleResponse)
		if err := proto.Unmarshal(f.Bytes(), out); err != nil {
			return nil, err
		}
		f.Free()
		out.Payload.Body = append(out.Payload.Body, " (rewritten response)"...)
		b, err = proto.Marshal(out)
		if err != nil {
			return nil, err
		}
		return rawcodec.FromBytes(b), nil
	}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{pipeline.UnaryInterceptor("rewrite", rewrite)}})
	resp, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hi")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := backendSaw.Load(), "hi (rewritten request)"; got != want {
		t.Errorf("backend saw %q, want %q", got, want)
	}
	if got, want := string(resp.GetPayload().GetBody()), "hi (rewritten request) (rewritten response)"; got != want {
		t.Errorf("client got %q, want %q", got, want)
	}
}

// TestUnaryInterceptorUpstreamFailsAtOnce calls, through a unary
// interceptor, a service the backend does not know, so that the upstream
// answers trailers-only at once, often before the route terminal's request
// goroutine has read the replayed request. The request frame must not be
// shared unsynchronized between that goroutine and the interceptor's return
// (a data race under -race, and a double free of pooled buffers).
func TestUnaryInterceptorUpstreamFailsAtOnce(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(ctx, req)
	}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{pipeline.UnaryInterceptor("pass", pass)}})
	client := testpb.NewUnimplementedServiceClient(env.ProxyConn)
	ctx := callCtx(t)
	for i := range 300 {
		if _, err := client.UnimplementedCall(ctx, &testpb.Empty{}); status.Code(err) != codes.Unimplemented {
			t.Fatalf("call %d: %v, want Unimplemented", i, err)
		}
	}
	if err := runUnary(ctx, env.Client); err != nil {
		t.Errorf("call after: %v", err)
	}
}

// TestUnaryInterceptorLateRecv is the same race without a network: the
// terminal reads the request on a goroutine that outlives its Serve, as
// route's request pump may. Under -race the interceptor's cleanup must not
// race with that read, and the request is either read once or freed once.
func TestUnaryInterceptorLateRecv(t *testing.T) {
	t.Parallel()
	pass := func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		return handler(ctx, req)
	}
	late := make(chan string, 1)
	chain := mustBuild(t, []pipeline.Filter{pipeline.UnaryInterceptor("pass", pass)},
		pipeline.HandlerFunc(func(_ *pipeline.Call, stream pipeline.ServerStream) error {
			go func() {
				f := new(rawcodec.Frame)
				err := stream.RecvMsg(f)
				late <- fmt.Sprintf("%q %v", f.Bytes(), err)
				f.Free()
			}()
			return status.Error(codes.Unavailable, "upstream failed at once")
		}))
	err := chain.Serve(&pipeline.Call{Method: unaryMethod}, newFakeStream([]byte("request")))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("Serve() = %v, want the terminal's Unavailable", err)
	}
	if got := <-late; got != `"request" <nil>` && got != `"" EOF` {
		t.Errorf("late RecvMsg got %s, want the request or EOF", got)
	}
}
