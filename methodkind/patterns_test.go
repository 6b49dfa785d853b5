package methodkind_test

import (
	"context"
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/methodkind"
)

func TestPatternsKind(t *testing.T) {
	t.Parallel()
	p := methodkind.Patterns{
		{Match: "/pkg.Svc/Watch", Kind: methodkind.ServerStreaming},
		{Match: "/pkg.Svc/*", Kind: methodkind.Unary},
		{Match: "/pkg.Stream*", Kind: methodkind.BidiStreaming},
		{Match: "/other.*", Kind: methodkind.ClientStreaming},
	}
	tests := []struct {
		method string
		want   methodkind.Kind
	}{
		{"/pkg.Svc/Watch", methodkind.ServerStreaming}, // exact, before the service rule
		{"/pkg.Svc/Get", methodkind.Unary},
		{"/pkg.Svc/Watch2", methodkind.Unary},
		{"/pkg.StreamSvc/Chat", methodkind.BidiStreaming},
		{"/other.x.Y/Z", methodkind.ClientStreaming},
		{"/pkg.Svc2/Get", methodkind.Unknown}, // "/pkg.Svc/*" needs the slash
		{"/pkg.svc/Get", methodkind.Unknown},  // case matters
		{"/otherpkg.Y/Z", methodkind.Unknown},
		{"pkg.Svc/Get", methodkind.Unknown},
		{"", methodkind.Unknown},
	}
	for _, tt := range tests {
		got, err := p.Kind(context.Background(), tt.method)
		if err != nil || got != tt.want {
			t.Errorf("Kind(%q) = %v, %v; want %v", tt.method, got, err, tt.want)
		}
	}

	all := append(p, methodkind.Pattern{Match: "*", Kind: methodkind.Unary})
	if got, _ := all.Kind(context.Background(), "/anything.At/All"); got != methodkind.Unary {
		t.Errorf(`"*" gave %v`, got)
	}
	if got, _ := methodkind.Patterns(nil).Kind(context.Background(), "/a.B/C"); got != methodkind.Unknown {
		t.Errorf("nil Patterns gave %v", got)
	}
}

func TestPatternsValidate(t *testing.T) {
	t.Parallel()
	good := []methodkind.Pattern{
		{Match: "/pkg.Svc/Method", Kind: methodkind.Unary},
		{Match: "/pkg.Svc/*", Kind: methodkind.ClientStreaming},
		{Match: "/pkg.*", Kind: methodkind.ServerStreaming},
		{Match: "/*", Kind: methodkind.BidiStreaming},
		{Match: "*", Kind: methodkind.Unary},
		{Match: "/Svc/M", Kind: methodkind.Unary},
	}
	if err := methodkind.Patterns(good).Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if err := methodkind.Patterns(nil).Validate(); err != nil {
		t.Errorf("Validate(nil) = %v", err)
	}

	bad := []struct {
		p    methodkind.Pattern
		want string
	}{
		{methodkind.Pattern{Match: "", Kind: methodkind.Unary}, "empty"},
		{methodkind.Pattern{Match: "pkg.Svc/M", Kind: methodkind.Unary}, `must start with "/"`},
		{methodkind.Pattern{Match: "/pkg.*/M", Kind: methodkind.Unary}, "may only end"},
		{methodkind.Pattern{Match: "**", Kind: methodkind.Unary}, `must start with "/"`},
		{methodkind.Pattern{Match: "/pkg.Svc", Kind: methodkind.Unary}, "not a full method"},
		{methodkind.Pattern{Match: "/pkg.Svc/", Kind: methodkind.Unary}, "not a full method"},
		{methodkind.Pattern{Match: "//M", Kind: methodkind.Unary}, "not a full method"},
		{methodkind.Pattern{Match: "/a/b/c", Kind: methodkind.Unary}, "not a full method"},
		{methodkind.Pattern{Match: "/pkg.Svc/M"}, "kind must be"},
		{methodkind.Pattern{Match: "*", Kind: methodkind.Kind(7)}, "kind must be"},
	}
	for _, tt := range bad {
		p := methodkind.Patterns{good[0], tt.p}
		err := p.Validate()
		if err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", tt.p)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "patterns[1]") || !strings.Contains(msg, tt.want) {
			t.Errorf("Validate(%+v) = %q, want patterns[1] and %q", tt.p, msg, tt.want)
		}
	}
}

func TestPatternsValidateReportsAll(t *testing.T) {
	t.Parallel()
	p := methodkind.Patterns{
		{Match: "bad", Kind: methodkind.Unary},
		{Match: "*", Kind: methodkind.Unary},
		{Match: "/a.B/C"},
	}
	err := p.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	msg := err.Error()
	if !strings.Contains(msg, "patterns[0]") || !strings.Contains(msg, "patterns[2]") || strings.Contains(msg, "patterns[1]") {
		t.Errorf("Validate() = %q, want patterns[0] and patterns[2] only", msg)
	}
}
