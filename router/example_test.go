package router_test

import (
	"fmt"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

// Routes are tried in order; the first that matches serves the call. A
// route with an empty Match catches everything left.
func ExampleRouter_Route() {
	// Each route's Handler is normally pipeline.Build(routeFilters, route.New(cluster)).
	h := pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })
	r, err := router.New(
		router.Route{Name: "admin", Handler: h, Match: router.Match{
			Prefix:   "/admin.",
			Metadata: map[string]string{"role": "admin"},
		}},
		router.Route{Name: "eu", Handler: h, Match: router.Match{Authority: "*.eu.example.com"}},
		router.Route{Name: "users", Handler: h, Match: router.Match{Service: "users.v1.Users"}},
	)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, call := range []*pipeline.Call{
		{Method: "/admin.v1.Admin/Purge", Header: metadata.Pairs("role", "admin")},
		{Method: "/admin.v1.Admin/Purge", Authority: "api.eu.example.com:443"},
		{Method: "/users.v1.Users/Get", Authority: "api.eu.example.com"},
		{Method: "/users.v1.Users/Get", Authority: "api.us.example.com"},
		{Method: "/orders.v1.Orders/Get"},
	} {
		name := "none: UNIMPLEMENTED"
		if rt := r.Route(call); rt != nil {
			name = rt.Name
		}
		fmt.Printf("%-22s %-24q -> %s\n", call.Method, call.Authority, name)
	}
	// Output:
	// /admin.v1.Admin/Purge  ""                       -> admin
	// /admin.v1.Admin/Purge  "api.eu.example.com:443" -> eu
	// /users.v1.Users/Get    "api.eu.example.com"     -> eu
	// /users.v1.Users/Get    "api.us.example.com"     -> users
	// /orders.v1.Orders/Get  ""                       -> none: UNIMPLEMENTED
}
