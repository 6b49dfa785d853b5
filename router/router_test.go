package router_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// nop is a handler for routes whose choice, not service, is tested.
var nop = pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })

// TestNewErrors checks that New reports every bad route at once, each
// naming routes[i] and the route's name.
func TestNewErrors(t *testing.T) {
	t.Parallel()
	_, err := router.New(
		router.Route{Name: "ok", Handler: nop},
		router.Route{Name: "nohandler"},
		router.Route{Name: "badmethod", Match: router.Match{Method: "pkg.Svc/Get"}, Handler: nop},
		router.Route{Name: "both", Match: router.Match{Metadata: map[string]string{"Upper": "x"}}},
	)
	if err == nil {
		t.Fatal("New with bad routes succeeded")
	}
	msg := err.Error()
	for _, want := range []string{
		"routes[1] (nohandler): handler: required",
		"routes[2] (badmethod): match.method:",
		"routes[3] (both): handler: required",
		"routes[3] (both): match.metadata:",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.Contains(msg, "routes[0]") {
		t.Errorf("error %q blames the valid routes[0]", msg)
	}
	if got := len(strings.Split(msg, "\n")); got != 4 {
		t.Errorf("error has %d lines, want one per problem (4):\n%s", got, msg)
	}
}

// TestNewValid checks that New accepts good routes, and no routes at all.
func TestNewValid(t *testing.T) {
	t.Parallel()
	if _, err := router.New(); err != nil {
		t.Errorf("New() = %v, want nil", err)
	}
	if _, err := router.New(router.Route{Name: "all", Handler: nop}); err != nil {
		t.Errorf("New(catch-all) = %v, want nil", err)
	}
}

// TestRouteFirstMatchWins checks that routes are tried in order and the
// first one that matches serves the call, even when later ones match too.
func TestRouteFirstMatchWins(t *testing.T) {
	t.Parallel()
	r, err := router.New(
		router.Route{Name: "get", Match: router.Match{Method: "/pkg.Svc/Get"}, Handler: nop},
		router.Route{Name: "gold", Match: router.Match{Metadata: map[string]string{"tenant": "gold"}}, Handler: nop},
		router.Route{Name: "svc", Match: router.Match{Service: "pkg.Svc"}, Handler: nop},
		router.Route{Name: "pkg", Match: router.Match{Prefix: "/pkg."}, Handler: nop},
	)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method string
		header metadata.MD
		want   string // "" for no route
	}{
		{"/pkg.Svc/Get", metadata.Pairs("tenant", "gold"), "get"},
		{"/pkg.Svc/Put", metadata.Pairs("tenant", "gold"), "gold"},
		{"/other.Svc/Put", metadata.Pairs("tenant", "gold"), "gold"},
		{"/pkg.Svc/Put", nil, "svc"},
		{"/pkg.Other/Put", nil, "pkg"},
		{"/other.Svc/Put", nil, ""},
	}
	for _, tt := range tests {
		call := &pipeline.Call{Method: tt.method, Header: tt.header}
		rt := r.Route(call)
		got := ""
		if rt != nil {
			got = rt.Name
		}
		if got != tt.want {
			t.Errorf("Route(%s, %v) = %q, want %q", tt.method, tt.header, got, tt.want)
		}
	}
}

// TestNewCopiesRoutes checks that changing the caller's slice after New
// does not change the router.
func TestNewCopiesRoutes(t *testing.T) {
	t.Parallel()
	routes := []router.Route{{Name: "a", Match: router.Match{Method: "/pkg.Svc/Get"}, Handler: nop}}
	r, err := router.New(routes...)
	if err != nil {
		t.Fatal(err)
	}
	routes[0].Name = "changed"
	routes[0].Match.Method = "/pkg.Svc/Put"
	if rt := r.Route(&pipeline.Call{Method: "/pkg.Svc/Get"}); rt == nil || rt.Name != "a" {
		t.Errorf("Route after the caller changed its slice = %+v, want route a", rt)
	}
}

// fakeStream is the minimal ServerStream a handler that ignores the stream
// needs.
type fakeStream struct{ pipeline.ServerStream }

func (fakeStream) Context() context.Context { return context.Background() }

// TestServe checks that Serve runs the matching route's handler and returns
// its error, and that a call matching no route gets UNIMPLEMENTED naming the
// full method.
func TestServe(t *testing.T) {
	t.Parallel()
	errA := status.Error(codes.Aborted, "from a")
	var servedA *pipeline.Call
	r, err := router.New(router.Route{
		Name:  "a",
		Match: router.Match{Service: "pkg.A"},
		Handler: pipeline.HandlerFunc(func(call *pipeline.Call, _ pipeline.ServerStream) error {
			servedA = call
			return errA
		}),
	})
	if err != nil {
		t.Fatal(err)
	}

	call := &pipeline.Call{Method: "/pkg.A/Do"}
	if err := r.Serve(call, fakeStream{}); !errors.Is(err, errA) {
		t.Errorf("Serve(/pkg.A/Do) = %v, want the route's error %v", err, errA)
	}
	if servedA != call {
		t.Errorf("route handler got call %p, want %p", servedA, call)
	}

	err = r.Serve(&pipeline.Call{Method: "/pkg.B/Do"}, fakeStream{})
	if status.Code(err) != codes.Unimplemented {
		t.Fatalf("Serve(/pkg.B/Do) = %v, want code Unimplemented", err)
	}
	if msg := status.Convert(err).Message(); !strings.Contains(msg, "/pkg.B/Do") {
		t.Errorf("no-route message %q does not name the method /pkg.B/Do", msg)
	}
}

// touching is a handler that reports a fixed Touch.
type touching struct {
	pipeline.Handler
	t pipeline.Touch
}

func (h touching) Touches() pipeline.Touch { return h.t }

// TestTouches checks that a router touches the union of what its routes'
// handlers touch, and that a chain with a router terminal reports it too.
func TestTouches(t *testing.T) {
	t.Parallel()
	msgChain, err := pipeline.Build([]pipeline.Filter{&pipeline.Funcs{
		FilterName:     "msg",
		RequestMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error { return nil },
	}}, nop)
	if err != nil {
		t.Fatal(err)
	}
	r, err := router.New(
		router.Route{Name: "msg", Match: router.Match{Service: "a.A"}, Handler: msgChain},
		router.Route{Name: "end", Match: router.Match{Service: "b.B"}, Handler: touching{nop, pipeline.TouchResponseEnd}},
		router.Route{Name: "plain", Handler: nop},
	)
	if err != nil {
		t.Fatal(err)
	}
	want := pipeline.TouchRequestMessages | pipeline.TouchResponseEnd
	if got := r.Touches(); got != want {
		t.Errorf("Router.Touches() = %b, want %b", got, want)
	}
	if !r.Touches().NeedsMessages() {
		t.Error("router with a message-hook route does not need messages")
	}

	global, err := pipeline.Build([]pipeline.Filter{
		pipeline.RequestHeadersFunc("hdr", func(context.Context, *pipeline.Call) error { return nil }),
	}, r)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := global.Touches(), want|pipeline.TouchRequestHeaders; got != want {
		t.Errorf("global chain Touches() = %b, want %b", got, want)
	}

	headersOnly, err := router.New(router.Route{Name: "end", Handler: touching{nop, pipeline.TouchResponseEnd}})
	if err != nil {
		t.Fatal(err)
	}
	if headersOnly.Touches().NeedsMessages() {
		t.Error("router whose routes touch only trailers needs messages")
	}
	empty, err := router.New()
	if err != nil {
		t.Fatal(err)
	}
	if got := empty.Touches(); got != 0 {
		t.Errorf("empty router Touches() = %b, want 0", got)
	}
}
