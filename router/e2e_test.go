package router_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

// recorder notes which filters saw a call, in order.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

// take returns the events so far and forgets them.
func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.events
	r.events = nil
	return e
}

// recording is a filter that notes its request headers and its end.
func (r *recorder) filter(name string) pipeline.Filter {
	return &pipeline.Funcs{
		FilterName: name,
		RequestHeaders: func(context.Context, *pipeline.Call) error {
			r.add(name)
			return nil
		},
		ResponseEnd: func(context.Context, *pipeline.Call, *pipeline.End) { r.add(name + ":end") },
	}
}

// namedBackend starts a backend whose unary answer is its name, and which
// records the x-route header it received.
func namedBackend(t *testing.T, name string, sawRoute chan<- []string) string {
	t.Helper()
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			sawRoute <- md.Get("x-route")
			return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(name)}}, nil
		},
	})
	return addr
}

// TestRouterEndToEnd runs a proxy whose global chain ends in a router with
// two routes to two backends. It checks that each call reaches the backend
// its route names, that the global filter runs before the route's filters
// on the request side and after them on the response side, that a global
// filter's header change is what routing sees, and that a call matching no
// route gets UNIMPLEMENTED naming its method.
func TestRouterEndToEnd(t *testing.T) {
	rec := &recorder{}
	sawRoute := make(chan []string, 1)
	addrA := namedBackend(t, "a", sawRoute)
	addrB := namedBackend(t, "b", sawRoute)

	clusterB, err := cluster.New(cluster.Config{Name: "b", Target: "passthrough:///" + addrB})
	if err != nil {
		t.Fatal(err)
	}
	// Closed after the proxy's Shutdown (cleanups run last-in first-out).
	t.Cleanup(func() { _ = clusterB.Close() })

	global := []pipeline.Filter{
		rec.filter("global"),
		// Sends gold-tenant calls to route a by setting the header it matches.
		pipeline.RequestHeadersFunc("tenant", func(_ context.Context, call *pipeline.Call) error {
			if slices.Contains(call.Header.Get("tenant"), "gold") {
				call.Header.Set("x-route", "a")
			}
			return nil
		}),
	}
	env := proxytest.Start(t, addrA, proxytest.Config{
		Filters: global,
		Terminal: func(clusterA *cluster.Cluster) pipeline.Handler {
			chainA, err := pipeline.Build([]pipeline.Filter{rec.filter("route-a")}, route.New(clusterA))
			if err != nil {
				t.Fatal(err)
			}
			chainB, err := pipeline.Build([]pipeline.Filter{rec.filter("route-b")}, route.New(clusterB))
			if err != nil {
				t.Fatal(err)
			}
			r, err := router.New(
				router.Route{Name: "a", Match: router.Match{Metadata: map[string]string{"x-route": "a"}}, Handler: chainA},
				router.Route{Name: "b", Match: router.Match{Service: "grpc.testing.TestService"}, Handler: chainB},
			)
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})

	tests := []struct {
		name        string
		md          metadata.MD
		wantBackend string
		wantRoute   []string // x-route header the backend saw
		wantEvents  []string
	}{
		{
			name:        "service route",
			wantBackend: "b",
			wantEvents:  []string{"global", "route-b", "route-b:end", "global:end"},
		},
		{
			name:        "client metadata route",
			md:          metadata.Pairs("x-route", "a"),
			wantBackend: "a",
			wantRoute:   []string{"a"},
			wantEvents:  []string{"global", "route-a", "route-a:end", "global:end"},
		},
		{
			name:        "route chosen by a global filter's header",
			md:          metadata.Pairs("tenant", "gold"),
			wantBackend: "a",
			wantRoute:   []string{"a"},
			wantEvents:  []string{"global", "route-a", "route-a:end", "global:end"},
		},
		{
			name:        "other tenant",
			md:          metadata.Pairs("tenant", "silver"),
			wantBackend: "b",
			wantEvents:  []string{"global", "route-b", "route-b:end", "global:end"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.NewOutgoingContext(ctx, tt.md)
			resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
			if err != nil {
				t.Fatalf("UnaryCall: %v", err)
			}
			if got := string(resp.GetPayload().GetBody()); got != tt.wantBackend {
				t.Errorf("served by backend %q, want %q", got, tt.wantBackend)
			}
			if got := <-sawRoute; !slices.Equal(got, tt.wantRoute) {
				t.Errorf("backend saw x-route %q, want %q", got, tt.wantRoute)
			}
			if got := rec.take(); !slices.Equal(got, tt.wantEvents) {
				t.Errorf("filter order %q, want %q", got, tt.wantEvents)
			}
		})
	}

	t.Run("no route", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		const method = "/grpc.testing.UnimplementedService/UnimplementedCall"
		err := env.ProxyConn.Invoke(ctx, method, &testpb.Empty{}, &testpb.Empty{})
		if status.Code(err) != codes.Unimplemented {
			t.Fatalf("call with no route: %v, want code Unimplemented", err)
		}
		if msg := status.Convert(err).Message(); !strings.Contains(msg, method) {
			t.Errorf("no-route message %q does not name %s", msg, method)
		}
		if got, want := rec.take(), []string{"global", "global:end"}; !slices.Equal(got, want) {
			t.Errorf("filter order %q, want %q (only the global chain)", got, want)
		}
		select {
		case md := <-sawRoute:
			t.Errorf("a backend was called (x-route %q)", md)
		default:
		}
	})

	// A streaming call takes the same route as a unary one.
	t.Run("streaming", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "tenant", "gold")
		stream, err := env.Client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{{Size: 3}, {Size: 5}},
		}, grpc.WaitForReady(true))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []int{3, 5} {
			m, err := stream.Recv()
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
			if got := len(m.GetPayload().GetBody()); got != want {
				t.Errorf("message of %d bytes, want %d", got, want)
			}
		}
		if _, err := stream.Recv(); err != io.EOF {
			t.Fatalf("end of stream: %v, want io.EOF", err)
		}
		if got, want := rec.take(), []string{"global", "route-a", "route-a:end", "global:end"}; !slices.Equal(got, want) {
			t.Errorf("filter order %q, want %q", got, want)
		}
	})
}
