package route_test

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// testKinds are the kinds of grpc.testing.TestService's methods.
var testKinds = methodkind.Patterns{
	{Match: "/grpc.testing.TestService/UnaryCall", Kind: methodkind.Unary},
	{Match: "/grpc.testing.TestService/EmptyCall", Kind: methodkind.Unary},
	{Match: "/grpc.testing.TestService/StreamingOutputCall", Kind: methodkind.ServerStreaming},
	{Match: "/grpc.testing.TestService/StreamingInputCall", Kind: methodkind.ClientStreaming},
	{Match: "/grpc.testing.TestService/FullDuplexCall", Kind: methodkind.BidiStreaming},
}

// withKinds is a proxytest terminal that knows testKinds.
func withKinds(c *cluster.Cluster) pipeline.Handler {
	return route.New(c, route.WithKinds(testKinds))
}

// goroutineID returns the calling goroutine's id, read from its stack
// header ("goroutine 42 [running]:"); tests only.
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = strings.TrimPrefix(s, "goroutine ")
	return s[:strings.IndexByte(s, ' ')]
}

// TestSingleRequestGoroutine: with kinds, the request of a unary or
// server-streaming call is read on the handler's goroutine (where the
// request header hooks run), not on a second one; client-streaming and
// bidi calls, and every call without kinds, read requests on their own
// goroutine.
func TestSingleRequestGoroutine(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	for _, tc := range []struct {
		name     string
		terminal func(*cluster.Cluster) pipeline.Handler
		endHook  bool            // the probe also has a request end hook
		inline   map[string]bool // by method
	}{
		{"without kinds", nil, false, map[string]bool{}},
		{"with kinds", withKinds, false, map[string]bool{"UnaryCall": true, "StreamingOutputCall": true}},
		// A filter waits for the client's half-close, which the
		// single-request path does not read.
		{"with kinds and a request end hook", withKinds, true, map[string]bool{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			headerG := map[string]string{}
			sameG := map[string]bool{}
			ended := map[string]bool{}
			probe := pipeline.Funcs{
				FilterName: "probe",
				RequestHeaders: func(_ context.Context, call *pipeline.Call) error {
					mu.Lock()
					defer mu.Unlock()
					headerG[call.Method] = goroutineID()
					return nil
				},
				RequestMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
					mu.Lock()
					defer mu.Unlock()
					sameG[call.Method[strings.LastIndexByte(call.Method, '/')+1:]] = headerG[call.Method] == goroutineID()
					return nil
				},
			}
			if tc.endHook {
				probe.RequestEnd = func(_ context.Context, call *pipeline.Call) error {
					mu.Lock()
					defer mu.Unlock()
					ended[call.Method[strings.LastIndexByte(call.Method, '/')+1:]] = true
					return nil
				}
			}
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{&probe}, Terminal: tc.terminal})
			allKinds(t, env.Client)
			mu.Lock()
			defer mu.Unlock()
			for _, m := range []string{"UnaryCall", "StreamingOutputCall", "StreamingInputCall", "FullDuplexCall"} {
				if got, ok := sameG[m]; !ok || got != tc.inline[m] {
					t.Errorf("%s: request read on the handler's goroutine = %v (seen %v), want %v", m, got, ok, tc.inline[m])
				}
				if tc.endHook && !ended[m] {
					t.Errorf("%s: the request end hook never ran", m)
				}
			}
		})
	}
}

// TestSingleRequestEdges: on the single-request path, a client that never
// sends its request and goes away ends the call and the upstream call (no
// goroutine left: goleak); a client that half-closes without a request
// gets what the upstream says of it, as directly; a filter's reply on the
// request ends the call with its status; a panicking stream wrapper ends
// only its call, with INTERNAL.
func TestSingleRequestEdges(t *testing.T) {
	active := new(activeCalls)
	addr, _ := testbackend.Start(t, &testbackend.Service{}, grpc.StatsHandler(active))
	reject := pipeline.Funcs{FilterName: "reject", RequestMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
		if call.Inbound.Get("reject") != nil {
			return status.Error(codes.FailedPrecondition, "rejected by filter")
		}
		return nil
	}}
	wrap := pipeline.AroundFunc("wrap", func(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
		if call.Inbound.Get("break") != nil {
			s = panickyStream{s}
		}
		return next.Serve(call, s)
	})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{wrap, &reject}, Terminal: withKinds})
	unaryDesc := &grpc.StreamDesc{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("client goes away before its request", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		s, err := env.ProxyConn.NewStream(cctx, &grpc.StreamDesc{ClientStreams: true}, "/grpc.testing.TestService/UnaryCall")
		if err != nil {
			t.Fatal(err)
		}
		// Wait until the proxy has opened the upstream call: it now waits
		// for the request on the handler's goroutine.
		for deadline := time.Now().Add(10 * time.Second); active.n.Load() != 1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the upstream call never began")
			}
		}
		ccancel()
		if err := s.RecvMsg(new(testpb.SimpleResponse)); status.Code(err) != codes.Canceled {
			t.Errorf("RecvMsg = %v, want Canceled", err)
		}
	})
	t.Run("half-close without a request", func(t *testing.T) {
		var codesSeen []codes.Code
		for _, conn := range []*grpc.ClientConn{env.DirectConn, env.ProxyConn} {
			s, err := conn.NewStream(ctx, unaryDesc, "/grpc.testing.TestService/UnaryCall")
			if err != nil {
				t.Fatal(err)
			}
			if err := s.CloseSend(); err != nil {
				t.Fatal(err)
			}
			codesSeen = append(codesSeen, status.Code(s.RecvMsg(new(testpb.SimpleResponse))))
		}
		if codesSeen[0] == codes.OK || codesSeen[0] != codesSeen[1] {
			t.Errorf("direct %v, proxied %v: want the same failure", codesSeen[0], codesSeen[1])
		}
	})
	t.Run("filter replies to the request", func(t *testing.T) {
		_, err := env.Client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "reject", "1"), &testpb.SimpleRequest{})
		if s, _ := status.FromError(err); s.Code() != codes.FailedPrecondition || s.Message() != "rejected by filter" {
			t.Errorf("UnaryCall = %v, want the filter's FAILED_PRECONDITION", err)
		}
	})
	t.Run("panicking stream wrapper", func(t *testing.T) {
		if _, err := env.Client.UnaryCall(withBreak(ctx), &testpb.SimpleRequest{}); status.Code(err) != codes.Internal {
			t.Errorf("UnaryCall = %v, want INTERNAL", err)
		}
		if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
			t.Errorf("next call: %v", err)
		}
	})
	// Every upstream call has ended: none is left open at the backend.
	for deadline := time.Now().Add(10 * time.Second); active.n.Load() != 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls still open at the backend", active.n.Load())
		}
	}
}

// activeCalls counts the calls a server has begun and not ended.
type activeCalls struct{ n atomic.Int64 }

func (a *activeCalls) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (a *activeCalls) HandleRPC(_ context.Context, s stats.RPCStats) {
	switch s.(type) {
	case *stats.Begin:
		a.n.Add(1)
	case *stats.End:
		a.n.Add(-1)
	}
}
func (a *activeCalls) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (a *activeCalls) HandleConn(context.Context, stats.ConnStats)                       {}
