package tracing_test

import (
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Config files name the filter "tracing"; its zero config builds.
func TestRegistered(t *testing.T) {
	t.Parallel()
	m, ok := pipeline.Lookup("tracing")
	if !ok {
		t.Fatal(`"tracing" is not registered`)
	}
	cfg := m.New()
	if _, ok := cfg.(*tracing.Config); !ok {
		t.Fatalf("New returns %T, want *tracing.Config", cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := cfg.Build(pipeline.BuildEnv{})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "tracing" {
		t.Errorf("built filter %q", f.Name())
	}
	off := &tracing.Config{RequestMetadata: []string{"x-tenant"}, DisableMetrics: true}
	if _, err := off.Build(pipeline.BuildEnv{}); err != nil {
		t.Fatal(err)
	}
}

// Validate names every bad field; Build and New refuse what Validate
// refuses.
func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		keys []string
		want []string // substrings of the error, "" for none
	}{
		{keys: []string{"x-tenant", "user-agent", "x.b_c-9"}},
		{keys: []string{""}, want: []string{"request_metadata[0]: empty key"}},
		{keys: []string{"X-Tenant"}, want: []string{`request_metadata[0]: "X-Tenant" is not a metadata key`}},
		{keys: []string{":authority"}, want: []string{`request_metadata[0]: ":authority" is not a metadata key`}},
		{keys: []string{"x-trace-bin"}, want: []string{`request_metadata[0]: "x-trace-bin" is a binary key`}},
		{keys: []string{"x-ok", "authorization", "cookie"}, want: []string{
			`request_metadata[1]: "authorization" carries credentials`,
			`request_metadata[2]: "cookie" carries credentials`,
		}},
		{keys: []string{"x-tenant", "x-tenant"}, want: []string{`request_metadata[1]: "x-tenant" is listed twice`}},
	} {
		cfg := tracing.Config{RequestMetadata: tc.keys}
		err := cfg.Validate()
		if len(tc.want) == 0 {
			if err != nil {
				t.Errorf("%q: %v", tc.keys, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%q: no error, want %q", tc.keys, tc.want)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q: error %q lacks %q", tc.keys, err, w)
			}
		}
		if _, err := cfg.Build(pipeline.BuildEnv{}); err == nil || !strings.HasPrefix(err.Error(), "tracing: ") {
			t.Errorf("%q: Build error %v, want one starting with tracing:", tc.keys, err)
		}
		if _, err := tracing.New(tracing.WithRequestMetadata(tc.keys...)); err == nil {
			t.Errorf("%q: New accepted it", tc.keys)
		}
	}
}
