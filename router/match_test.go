package router_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

// TestMatch checks every Match field alone and in combination against a
// few calls.
func TestMatch(t *testing.T) {
	t.Parallel()
	// get is the call most cases match against.
	get := &pipeline.Call{
		Method:    "/pkg.Svc/Get",
		Authority: "api.example.com:443",
		Header:    metadata.Pairs("tenant", "gold", "env", "prod", "env", "canary"),
	}
	nested := &pipeline.Call{Method: "/a.b.v1.Svc/Get", Authority: "api.example.com"}
	upper := &pipeline.Call{Method: "/pkg.Svc/Get", Authority: "API.Example.COM"}
	bare := &pipeline.Call{Method: "/pkg.Svc/Get", Authority: "api.example.com"}
	ipv6 := &pipeline.Call{Method: "/pkg.Svc/Get", Authority: "[::1]:50051"}
	noAuthority := &pipeline.Call{Method: "/pkg.Svc/Get"}

	tests := []struct {
		name  string
		match router.Match
		call  *pipeline.Call
		want  bool
	}{
		{"empty matches all", router.Match{}, get, true},
		{"empty matches a call without headers", router.Match{}, noAuthority, true},

		{"method exact", router.Match{Method: "/pkg.Svc/Get"}, get, true},
		{"method other", router.Match{Method: "/pkg.Svc/Put"}, get, false},
		{"method same name other service", router.Match{Method: "/pkg.Other/Get"}, get, false},
		{"method is case-sensitive", router.Match{Method: "/pkg.svc/Get"}, get, false},
		{"method is not a prefix", router.Match{Method: "/pkg.Svc/Ge"}, get, false},

		{"service", router.Match{Service: "pkg.Svc"}, get, true},
		{"service nested package", router.Match{Service: "a.b.v1.Svc"}, nested, true},
		{"service is not a prefix", router.Match{Service: "pkg.Sv"}, get, false},
		{"service package only", router.Match{Service: "pkg"}, get, false},
		{"service other", router.Match{Service: "pkg.Other"}, get, false},

		{"prefix package", router.Match{Prefix: "/pkg."}, get, true},
		{"prefix partial method", router.Match{Prefix: "/pkg.Svc/G"}, get, true},
		{"prefix full method", router.Match{Prefix: "/pkg.Svc/Get"}, get, true},
		{"prefix other", router.Match{Prefix: "/other."}, get, false},
		{"prefix without leading slash", router.Match{Prefix: "pkg."}, get, false},

		{"authority exact", router.Match{Authority: "api.example.com"}, bare, true},
		{"authority ignores the call's port", router.Match{Authority: "api.example.com"}, get, true},
		{"authority case-insensitive pattern", router.Match{Authority: "API.EXAMPLE.com"}, bare, true},
		{"authority case-insensitive call", router.Match{Authority: "api.example.com"}, upper, true},
		{"authority with the same port", router.Match{Authority: "api.example.com:443"}, get, true},
		{"authority with another port", router.Match{Authority: "api.example.com:8443"}, get, false},
		{"authority with port, call without", router.Match{Authority: "api.example.com:443"}, bare, false},
		{"authority other host", router.Match{Authority: "web.example.com"}, get, false},
		{"authority parent domain", router.Match{Authority: "example.com"}, get, false},
		{"authority missing", router.Match{Authority: "api.example.com"}, noAuthority, false},
		{"authority ipv6 with port", router.Match{Authority: "[::1]:50051"}, ipv6, true},
		{"authority ipv6 ignores the call's port", router.Match{Authority: "[::1]"}, ipv6, true},
		{"authority ipv6 other port", router.Match{Authority: "[::1]:1"}, ipv6, false},

		{"wildcard subdomain", router.Match{Authority: "*.example.com"}, bare, true},
		{"wildcard subdomain with port", router.Match{Authority: "*.example.com"}, get, true},
		{"wildcard case-insensitive", router.Match{Authority: "*.EXAMPLE.com"}, upper, true},
		{"wildcard deeper subdomain", router.Match{Authority: "*.example.com"}, &pipeline.Call{Authority: "a.b.example.com"}, true},
		{"wildcard not the apex", router.Match{Authority: "*.example.com"}, &pipeline.Call{Authority: "example.com"}, false},
		{"wildcard not the apex with port", router.Match{Authority: "*.example.com"}, &pipeline.Call{Authority: "example.com:443"}, false},
		{"wildcard not a suffix of a label", router.Match{Authority: "*.example.com"}, &pipeline.Call{Authority: "badexample.com"}, false},
		{"wildcard other domain", router.Match{Authority: "*.example.com"}, &pipeline.Call{Authority: "api.example.org"}, false},
		{"wildcard missing authority", router.Match{Authority: "*.example.com"}, noAuthority, false},

		{"metadata value", router.Match{Metadata: map[string]string{"tenant": "gold"}}, get, true},
		{"metadata other value", router.Match{Metadata: map[string]string{"tenant": "silver"}}, get, false},
		{"metadata value is case-sensitive", router.Match{Metadata: map[string]string{"tenant": "Gold"}}, get, false},
		{"metadata presence", router.Match{Metadata: map[string]string{"tenant": "*"}}, get, true},
		{"metadata presence of a missing key", router.Match{Metadata: map[string]string{"region": "*"}}, get, false},
		{"metadata missing key", router.Match{Metadata: map[string]string{"region": "eu"}}, get, false},
		{"metadata without header", router.Match{Metadata: map[string]string{"tenant": "*"}}, noAuthority, false},
		{"metadata first of several values", router.Match{Metadata: map[string]string{"env": "prod"}}, get, true},
		{"metadata second of several values", router.Match{Metadata: map[string]string{"env": "canary"}}, get, true},
		{"metadata none of several values", router.Match{Metadata: map[string]string{"env": "dev"}}, get, false},
		{"metadata all keys", router.Match{Metadata: map[string]string{"tenant": "gold", "env": "canary"}}, get, true},
		{"metadata one key fails", router.Match{Metadata: map[string]string{"tenant": "gold", "env": "dev"}}, get, false},

		{"all fields", router.Match{
			Method: "/pkg.Svc/Get", Service: "pkg.Svc", Prefix: "/pkg.", Authority: "*.example.com",
			Metadata: map[string]string{"tenant": "gold", "env": "*"},
		}, get, true},
		{"all fields but method", router.Match{
			Method: "/pkg.Svc/Put", Service: "pkg.Svc", Prefix: "/pkg.", Authority: "*.example.com",
			Metadata: map[string]string{"tenant": "gold"},
		}, get, false},
		{"all fields but service", router.Match{
			Method: "/pkg.Svc/Get", Service: "pkg.Other", Prefix: "/pkg.", Authority: "*.example.com",
		}, get, false},
		{"all fields but prefix", router.Match{
			Service: "pkg.Svc", Prefix: "/other.", Authority: "*.example.com",
		}, get, false},
		{"all fields but authority", router.Match{
			Service: "pkg.Svc", Prefix: "/pkg.", Authority: "*.example.org",
			Metadata: map[string]string{"tenant": "gold"},
		}, get, false},
		{"all fields but metadata", router.Match{
			Service: "pkg.Svc", Prefix: "/pkg.", Authority: "api.example.com",
			Metadata: map[string]string{"tenant": "silver"},
		}, get, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.match.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if got := tt.match.Matches(tt.call); got != tt.want {
				t.Errorf("%+v.Matches(method %q, authority %q, header %v) = %v, want %v",
					tt.match, tt.call.Method, tt.call.Authority, tt.call.Header, got, tt.want)
			}
		})
	}
}

// TestMatchValidate checks that malformed matches are refused at load time,
// naming the field, and that well-formed ones pass.
func TestMatchValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		match   router.Match
		wantErr string // "" for valid
	}{
		{"empty", router.Match{}, ""},
		{"full method", router.Match{Method: "/pkg.Svc/Get"}, ""},
		{"method without leading slash", router.Match{Method: "pkg.Svc/Get"}, "method:"},
		{"method without method name", router.Match{Method: "/pkg.Svc"}, "method:"},
		{"method with too many slashes", router.Match{Method: "/a/b/c"}, "method:"},
		{"service", router.Match{Service: "pkg.Svc"}, ""},
		{"service with slash", router.Match{Service: "/pkg.Svc"}, "service:"},
		{"prefix", router.Match{Prefix: "/pkg."}, ""},
		{"authority", router.Match{Authority: "api.example.com:443"}, ""},
		{"authority wildcard", router.Match{Authority: "*.example.com"}, ""},
		{"authority lone star", router.Match{Authority: "*"}, "authority:"},
		{"authority star inside", router.Match{Authority: "api.*.com"}, "authority:"},
		{"authority star without dot", router.Match{Authority: "*example.com"}, "authority:"},
		{"authority star dot only", router.Match{Authority: "*."}, "authority:"},
		{"authority wildcard with a port", router.Match{Authority: "*.example.com:443"}, "authority:"},
		{"metadata", router.Match{Metadata: map[string]string{"tenant": "gold", "env": "*"}}, ""},
		{"metadata uppercase key", router.Match{Metadata: map[string]string{"Tenant": "gold"}}, "metadata:"},
		{"metadata empty key", router.Match{Metadata: map[string]string{"": "gold"}}, "metadata:"},
		{"metadata hop-by-hop key", router.Match{Metadata: map[string]string{"user-agent": "curl"}}, "metadata:"},
		{"metadata internal key", router.Match{Metadata: map[string]string{"x-manifold-route": "a"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.match.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want nil", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Validate() = nil, want an error starting with %q", tt.wantErr)
			case tt.wantErr != "" && !strings.HasPrefix(err.Error(), tt.wantErr):
				t.Errorf("Validate() = %q, want it to start with %q", err, tt.wantErr)
			}
		})
	}
}
