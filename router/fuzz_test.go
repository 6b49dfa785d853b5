package router_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

// asciiUpper upper-cases ASCII letters only: case-insensitive matching of
// authorities is about host names, which are ASCII.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'a' && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// FuzzMatch builds a match from arbitrary strings. Validate and New agree
// on what is valid, and their errors name the field (and New's the route);
// a valid match selects a call made to fit each of its fields, by their
// documented meaning, and rejects calls that miss one.
func FuzzMatch(f *testing.F) {
	f.Add("/pkg.Svc/Get", "", "", "", "", "")
	f.Add("", "pkg.Svc", "/pkg.", "*.example.com", "x-tenant", "gold")
	f.Add("/pkg.Svc/Get", "pkg.Svc", "/pkg.S", "API.example.com:443", "x-canary", "*")
	f.Add("pkg.Svc/Get", "a/b", "", "a.*.com", "Upper", "")
	f.Add("", "", "", "[::1]:50051", "te", "trailers")
	f.Add("", "", "", "*.", "", "")
	f.Fuzz(func(t *testing.T, method, service, prefix, authority, mdKey, mdValue string) {
		m := router.Match{Method: method, Service: service, Prefix: prefix, Authority: authority}
		if mdKey != "" {
			m.Metadata = map[string]string{mdKey: mdValue}
		}
		err := m.Validate()
		_, newErr := router.New(router.Route{Name: "r", Match: m, Handler: nop})
		if (err == nil) != (newErr == nil) {
			t.Fatalf("Validate error %v, New error %v", err, newErr)
		}
		if err != nil {
			field, _, _ := strings.Cut(err.Error(), ":")
			switch field {
			case "method", "service", "authority", "metadata":
			default:
				t.Fatalf("Validate error %q names no field of the match", err)
			}
			if want := "routes[0] (r): match." + err.Error(); newErr.Error() != want {
				t.Fatalf("New error %q, want %q", newErr, want)
			}
			return
		}

		// The witness: a call built from the match's own fields.
		call := &pipeline.Call{Method: "/x.Y/Z", Header: metadata.MD{}}
		switch {
		case method != "":
			call.Method = method
		case service != "":
			call.Method = "/" + service + "/M"
		case prefix != "":
			call.Method = prefix + "M"
		}
		// Set fields narrow each other: a method outside the service or
		// without the prefix can never match.
		want := strings.HasPrefix(call.Method, prefix) &&
			(service == "" || strings.HasPrefix(call.Method, "/"+service+"/") && strings.Count(call.Method, "/") == 2)
		host := authority
		if strings.HasPrefix(authority, "*.") {
			host = "a" + authority[1:]
		}
		call.Authority = host
		if mdKey != "" {
			v := mdValue
			if v == "*" {
				v = "any value"
			}
			call.Header.Append(mdKey, "decoy", v) // any of a key's values
		}
		if got := m.Matches(call); got != want {
			t.Fatalf("match %+v on its own witness (method %q, authority %q, headers %v) = %v, want %v",
				m, call.Method, call.Authority, map[string][]string(call.Header), got, want)
		}
		if !want {
			return
		}

		variant := func(what string, change func(c *pipeline.Call), want bool) {
			t.Helper()
			c := &pipeline.Call{Method: call.Method, Authority: call.Authority, Header: call.Header.Copy()}
			change(c)
			if got := m.Matches(c); got != want {
				t.Fatalf("match %+v, witness with %s (method %q, authority %q, headers %v): %v, want %v",
					m, what, c.Method, c.Authority, map[string][]string(c.Header), got, want)
			}
		}
		if authority != "" {
			variant("upper-case authority", func(c *pipeline.Call) { c.Authority = asciiUpper(c.Authority) }, true)
			variant("a port", func(c *pipeline.Call) { c.Authority += ":8443" }, true)
			variant("another authority", func(c *pipeline.Call) { c.Authority = "other.invalid" },
				strings.ToLower(host) == "other.invalid" || strings.ToLower(authority) == "*.invalid")
			if strings.HasPrefix(authority, "*.") {
				// Any subdomain, not the domain itself.
				variant("the bare domain", func(c *pipeline.Call) { c.Authority = authority[2:] }, false)
				variant("the suffix alone", func(c *pipeline.Call) { c.Authority = authority[1:] }, false)
			}
		}
		if mdKey != "" {
			variant("no such header", func(c *pipeline.Call) { delete(c.Header, mdKey) }, false)
			if mdValue != "*" {
				variant("another value", func(c *pipeline.Call) { c.Header.Set(mdKey, mdValue+"-other") }, false)
			}
		}
		if method != "" {
			variant("another method", func(c *pipeline.Call) { c.Method += "x" }, false)
		}
		if service != "" && method == "" {
			variant("another service", func(c *pipeline.Call) { c.Method = "/" + service + "x/M" }, false)
		}
	})
}

// fuzzRoutes is the fixed route table of FuzzRoute.
var fuzzRoutes = []router.Route{
	{Name: "get", Match: router.Match{Method: "/pkg.Svc/Get"}},
	{Name: "admin-gold", Match: router.Match{Service: "pkg.Admin", Metadata: map[string]string{"x-tenant": "gold"}}},
	{Name: "internal", Match: router.Match{Prefix: "/pkg.", Authority: "*.internal.example.com"}},
	{Name: "canary", Match: router.Match{Authority: "api.example.com", Metadata: map[string]string{"x-canary": "*"}}},
	{Name: "steered", Match: router.Match{Metadata: map[string]string{"x-manifold-route": "fanout", "x-tenant": "*"}}},
	{Name: "health", Match: router.Match{Service: "grpc.health.v1.Health"}},
}

// FuzzRoute routes arbitrary calls through a fixed table. The router picks
// the first route whose match selects the call, the same one every time,
// and serves the call with that route's handler; no match is UNIMPLEMENTED
// naming the method. Matching does not change the call. More headers can
// only make an earlier route match, and neither the letter case of the
// authority nor a port changes the route.
func FuzzRoute(f *testing.F) {
	f.Add("/pkg.Svc/Get", "localhost", "", "", "", "")
	f.Add("/pkg.Admin/Delete", "API.example.com:443", "x-tenant", "gold", "x-canary", "1")
	f.Add("/pkg.Other/Do", "a.internal.example.com", "x-manifold-route", "fanout", "x-tenant", "x")
	f.Add("/grpc.health.v1.Health/Check", "[::1]:50051", "X-Tenant", "gold", "", "")
	f.Add("", "", "x-canary", "", "x-manifold-route", "other")
	f.Fuzz(func(t *testing.T, method, authority, k1, v1, k2, v2 string) {
		served := -1
		routes := make([]router.Route, len(fuzzRoutes))
		for i, r := range fuzzRoutes {
			r.Handler = pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
				served = i
				return nil
			})
			routes[i] = r
		}
		rt, err := router.New(routes...)
		if err != nil {
			t.Fatal(err)
		}
		withDefault, err := router.New(append(routes[:len(routes):len(routes)], router.Route{Name: "default", Handler: nop})...)
		if err != nil {
			t.Fatal(err)
		}
		index := func(call *pipeline.Call) int {
			r := rt.Route(call)
			if r == nil {
				return -1
			}
			for i := range fuzzRoutes {
				if r.Name == fuzzRoutes[i].Name {
					return i
				}
			}
			t.Fatalf("Route returned %q, not in the table", r.Name)
			return 0
		}

		header := metadata.MD{}
		if k1 != "" {
			header.Append(k1, v1)
		}
		call := &pipeline.Call{Method: method, Authority: authority, Header: header}
		before := header.Copy()
		got := index(call)

		first := -1
		for i := range routes {
			if routes[i].Match.Matches(call) {
				first = i
				break
			}
		}
		if got != first {
			t.Fatalf("Route chose %d, the first matching route is %d", got, first)
		}
		if again := index(call); again != got {
			t.Fatalf("Route chose %d, then %d", got, again)
		}
		if call.Method != method || call.Authority != authority || !maps.EqualFunc(call.Header, before, func(a, b []string) bool {
			return fmt.Sprint(a) == fmt.Sprint(b)
		}) {
			t.Fatalf("matching changed the call: method %q, authority %q, headers %v, were %v",
				call.Method, call.Authority, map[string][]string(call.Header), map[string][]string(before))
		}
		if d := withDefault.Route(call); got >= 0 && d.Name != fuzzRoutes[got].Name || got < 0 && d.Name != "default" {
			t.Fatalf("with a catch-all route Route chose %q, without %d", d.Name, got)
		}

		err = rt.Serve(call, nil)
		if got < 0 {
			if status.Code(err) != codes.Unimplemented || !strings.Contains(status.Convert(err).Message(), method) || served != -1 || call.Route != "" {
				t.Fatalf("no route: Serve = %v, served %d, call.Route %q", err, served, call.Route)
			}
		} else if err != nil || served != got || call.Route != fuzzRoutes[got].Name {
			t.Fatalf("route %d: Serve = %v, served %d, call.Route %q", got, err, served, call.Route)
		}

		same := func(what string, c *pipeline.Call) {
			t.Helper()
			if i := index(c); i != got {
				t.Fatalf("with %s (%q) Route chose %d, want %d", what, c.Authority, i, got)
			}
		}
		same("upper-case authority", &pipeline.Call{Method: method, Authority: asciiUpper(authority), Header: header})
		if !strings.ContainsAny(authority, ":[]") {
			same("a port", &pipeline.Call{Method: method, Authority: authority + ":443", Header: header})
		}
		if k2 != "" {
			more := header.Copy()
			more.Append(k2, v2)
			if i := index(&pipeline.Call{Method: method, Authority: authority, Header: more}); got >= 0 && (i < 0 || i > got) {
				t.Fatalf("another header %s=%q moved the call from route %d to %d", k2, v2, got, i)
			}
		}
	})
}
