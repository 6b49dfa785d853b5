package router

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Route sends the calls it matches to its handler, normally a
// [pipeline.Chain] built from the route's filters and terminal.
type Route struct {
	// Name identifies the route in logs and errors.
	Name string
	// Match selects the calls.
	Match Match
	// Handler serves them.
	Handler pipeline.Handler
}

// Router dispatches calls to the first matching route. It is immutable and
// safe for concurrent use.
type Router struct {
	routes []Route
}

// New checks the routes and returns a router over them, in order.
func New(routes ...Route) (*Router, error) {
	var errs []error
	for i := range routes {
		r := &routes[i]
		if r.Handler == nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): handler: required", i, r.Name))
		}
		if err := r.Match.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("routes[%d] (%s): match.%w", i, r.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &Router{routes: append([]Route(nil), routes...)}, nil
}

// Route returns the route that serves call, or nil.
func (r *Router) Route(call *pipeline.Call) *Route {
	for i := range r.routes {
		if r.routes[i].Match.Matches(call) {
			return &r.routes[i]
		}
	}
	return nil
}

// Serve runs call through its route.
func (r *Router) Serve(call *pipeline.Call, stream pipeline.ServerStream) error {
	rt := r.Route(call)
	if rt == nil {
		return status.Errorf(codes.Unimplemented, "manifold: no route for method %s", call.Method)
	}
	call.Route = rt.Name
	return rt.Handler.Serve(call, stream)
}

// Touches is the union of what every route's handler touches.
func (r *Router) Touches() pipeline.Touch {
	var t pipeline.Touch
	for _, rt := range r.routes {
		if tt, ok := rt.Handler.(pipeline.Toucher); ok {
			t |= tt.Touches()
		}
	}
	return t
}

var (
	_ pipeline.Handler = (*Router)(nil)
	_ pipeline.Toucher = (*Router)(nil)
)
