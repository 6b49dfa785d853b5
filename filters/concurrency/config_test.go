package concurrency_test

import (
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/filters/concurrency"
	"github.com/manifold-grpc/manifold/internal/configtest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  concurrency.Config
		errs []string // substrings, one per problem; none: valid
	}{
		{name: "minimal", cfg: concurrency.Config{MaxConcurrent: 1}},
		{name: "queue with default timeout", cfg: concurrency.Config{MaxConcurrent: 10, MaxPending: 5}},
		{name: "queue", cfg: concurrency.Config{MaxConcurrent: 10, MaxPending: 5, QueueTimeout: time.Second}},
		{name: "zero", cfg: concurrency.Config{}, errs: []string{"max_concurrent: must be at least 1"}},
		{name: "negative", cfg: concurrency.Config{MaxConcurrent: -1, MaxPending: -1, QueueTimeout: -time.Second},
			errs: []string{"max_concurrent: must be at least 1", "max_pending: must not be negative", "queue_timeout: must not be negative"}},
		{name: "timeout without a queue", cfg: concurrency.Config{MaxConcurrent: 1, QueueTimeout: time.Second},
			errs: []string{"queue_timeout: needs max_pending"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			configtest.Validation(t, tc.cfg.Validate, func() error {
				_, err := concurrency.New(tc.cfg)
				return err
			}, "concurrency_limit: ", tc.errs)
		})
	}
}

// TestConfigFile: the filter is registered as "concurrency_limit", decodes
// from a config file (durations as "250ms"), and its errors point at the
// file, line and field.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	good := configtest.Head + "routes:\n  - name: r\n    route: c\n    filters:\n      - concurrency_limit: {max_concurrent: 100, max_pending: 50, queue_timeout: 250ms}\n"
	bad := configtest.Head + "filters:\n  - concurrency_limit:\n      max_concurrent: 0\n      queue_timeout: 1s\nroutes: [{name: r, route: c}]\n"
	got := configtest.FilterFile(t, concurrency.Name, good, bad, []string{
		"m.yaml:5:23: filters[0].concurrency_limit.max_concurrent: must be at least 1",
		"m.yaml:6:22: filters[0].concurrency_limit.queue_timeout: needs max_pending",
	}).(*concurrency.Config)
	if want := (concurrency.Config{MaxConcurrent: 100, MaxPending: 50, QueueTimeout: 250 * time.Millisecond}); *got != want {
		t.Fatalf("decoded %+v, want %+v", *got, want)
	}
}
