package ratelimit_test

import (
	"math"
	"testing"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
	"github.com/manifold-grpc/manifold/internal/configtest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  ratelimit.Config
		errs []string // substrings, one per problem; none: valid
	}{
		{name: "minimal", cfg: ratelimit.Config{Rate: 10, Burst: 1}},
		{name: "fractional rate", cfg: ratelimit.Config{Rate: 0.1, Burst: 5, Key: "none"}},
		{name: "peer", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "peer", MaxKeys: 10}},
		{name: "claim", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "claim:sub"}},
		{name: "header", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "header:X-Tenant"}},
		{name: "zero", cfg: ratelimit.Config{},
			errs: []string{"rate: must be a number of tokens per second above 0", "burst: must be at least 1"}},
		{name: "negative rate", cfg: ratelimit.Config{Rate: -1, Burst: 1}, errs: []string{"rate: "}},
		{name: "NaN rate", cfg: ratelimit.Config{Rate: math.NaN(), Burst: 1}, errs: []string{"rate: "}},
		{name: "infinite rate", cfg: ratelimit.Config{Rate: math.Inf(1), Burst: 1}, errs: []string{"rate: "}},
		{name: "unknown key", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "ip"},
			errs: []string{`key: "ip" is not one of none, peer, claim:NAME, header:NAME`}},
		{name: "unknown key kind", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "cookie:x"},
			errs: []string{`key: "cookie:x" is not one of`}},
		{name: "claim without a name", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "claim:"},
			errs: []string{"key: claim: needs a claim name"}},
		{name: "header without a name", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "header:"},
			errs: []string{"key: header: needs a header name"}},
		{name: "bad header", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "header::authority"},
			errs: []string{`key: ":authority" is not a metadata key`}},
		{name: "negative max_keys", cfg: ratelimit.Config{Rate: 1, Burst: 1, Key: "peer", MaxKeys: -1},
			errs: []string{"max_keys: must not be negative"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			configtest.Validation(t, tc.cfg.Validate, func() error {
				_, err := ratelimit.New(tc.cfg)
				return err
			}, "rate_limit: ", tc.errs)
		})
	}
}

// TestConfigFile: the filter is registered as "rate_limit", decodes from
// a config file, and its errors point at the file, line and field.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	good := configtest.Head + "routes:\n  - name: r\n    route: c\n    filters:\n      - rate_limit: {rate: 2.5, burst: 10, key: \"header:x-tenant\", max_keys: 500}\n"
	bad := configtest.Head + "routes:\n  - name: r\n    route: c\n    filters:\n      - rate_limit:\n          rate: 0\n          burst: 1\n          key: ip\n"
	got := configtest.FilterFile(t, ratelimit.Name, good, bad, []string{
		"m.yaml:8:17: routes[0].filters[0].rate_limit.rate: must be",
		`m.yaml:10:16: routes[0].filters[0].rate_limit.key: "ip" is not one of`,
	}).(*ratelimit.Config)
	if want := (ratelimit.Config{Rate: 2.5, Burst: 10, Key: "header:x-tenant", MaxKeys: 500}); *got != want {
		t.Fatalf("decoded %+v, want %+v", *got, want)
	}
}
