package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestCustomFilterExample runs the example in-process and checks what each
// step printed.
func TestCustomFilterExample(t *testing.T) {
	var buf bytes.Buffer
	if err := run(&buf); err != nil {
		t.Fatalf("run: %v\n%s", err, buf.String())
	}
	out := buf.String()

	// Each step's section: from its header to the next one.
	section := func(header, next string) string {
		t.Helper()
		_, s, ok := strings.Cut(out, header)
		if !ok {
			t.Fatalf("output lacks %q:\n%s", header, out)
		}
		if next != "" {
			s, _, _ = strings.Cut(s, next)
		}
		return s
	}
	for _, tc := range []struct {
		step, got string
		want      []string // in this order
	}{
		{"no token", section("1. no token:", "2. tenant acme:"), []string{
			"log:    level=INFO msg=\"finished call\" grpc.full_method=/manifold.examples.echo.v1.Echo/Say",
			"grpc.code=Unauthenticated grpc.error=\"auth: token missing\"",
			"client: Unauthenticated: auth: token missing (backend calls so far: 0)\n",
		}},
		{"tenant acme", section("2. tenant acme:", "3. tenant globex:"), []string{
			"grpc.code=OK",
			"upstream.cluster=echo upstream.code=OK auth.subject=alice grpc.request.metadata.x-tenant=acme\n",
			"client: got \"hello\" from backend (tenant acme), x-served-via: manifold (backend calls so far: 1)\n",
		}},
		{"tenant globex", section("3. tenant globex:", "4. "), []string{
			"grpc.code=PermissionDenied grpc.error=\"tenant: globex may not call /manifold.examples.echo.v1.Echo/Say\"",
			"auth.subject=bob grpc.request.metadata.x-tenant=globex\n",
			"client: PermissionDenied: tenant: globex may not call /manifold.examples.echo.v1.Echo/Say (backend calls so far: 1)\n",
		}},
		{"bad config", section("4. the same file with \"allow: []\" fails to load:", ""), []string{
			"custom-filter.yaml:17:14: filters[2].example.tenant.allow: at least one tenant is required\n",
		}},
	} {
		rest := tc.got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: lacks %q in order:\n%s", tc.step, w, tc.got)
				break
			}
			rest = rest[i+len(w):]
		}
	}
	// Logs left out the attributes that change from run to run.
	for _, noisy := range []string{"time=", "time_ms=", "peer.address=", "grpc.authority="} {
		if strings.Contains(out, noisy) {
			t.Errorf("output has %q:\n%s", noisy, out)
		}
	}
}

// TestTenantCheck runs the user's filter alone against calls with and
// without verified claims, as the chain would.
func TestTenantCheck(t *testing.T) {
	t.Parallel()
	f, err := (&TenantConfig{Allow: []string{"acme"}}).Build(pipeline.BuildEnv{})
	if err != nil {
		t.Fatal(err)
	}
	check := f.(pipeline.RequestHeadersHook)
	for _, tc := range []struct {
		name   string
		claims pipeline.Claims // nil: not authenticated
		want   codes.Code
	}{
		{"allowed", pipeline.Claims{"tenant": "acme"}, codes.OK},
		{"other tenant", pipeline.Claims{"tenant": "globex"}, codes.PermissionDenied},
		{"no tenant claim", pipeline.Claims{"sub": "alice"}, codes.PermissionDenied},
		{"tenant is a list", pipeline.Claims{"tenant": []any{"acme"}}, codes.PermissionDenied},
		{"not authenticated", nil, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call := &pipeline.Call{Method: "/manifold.examples.echo.v1.Echo/Say"}
			if tc.claims != nil {
				pipeline.ClaimsKey.Set(call, tc.claims)
			}
			err := check.OnRequestHeaders(context.Background(), call)
			if got := status.Code(err); got != tc.want {
				t.Errorf("got %v, want %s", err, tc.want)
			}
		})
	}
}

// TestTenantConfigValidate: a bad config names the field at fault.
func TestTenantConfigValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  TenantConfig
		want string // "" for valid
	}{
		{"valid", TenantConfig{Allow: []string{"acme", "initech"}}, ""},
		{"no tenants", TenantConfig{}, "allow: at least one tenant is required"},
		{"empty tenant", TenantConfig{Allow: []string{"acme", ""}}, "allow[1]: empty tenant"},
		{"duplicate", TenantConfig{Allow: []string{"acme", "acme"}}, `allow[1]: "acme" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
