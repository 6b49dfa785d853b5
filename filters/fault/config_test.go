package fault_test

import (
	"math"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/filters/fault"
	"github.com/manifold-grpc/manifold/internal/configtest"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	pct := func(p float64) *float64 { return &p }
	for _, tc := range []struct {
		name string
		cfg  fault.Config
		errs []string // substrings, one per problem; none: valid
	}{
		{name: "delay", cfg: fault.Config{Delay: &fault.Delay{Duration: time.Second}}},
		{name: "abort", cfg: fault.Config{Abort: &fault.Abort{Code: "UNAVAILABLE", Percent: pct(0.5)}}},
		{name: "abort code spellings", cfg: fault.Config{Abort: &fault.Abort{Code: "resource_exhausted"}}},
		{name: "abort code CamelCase", cfg: fault.Config{Abort: &fault.Abort{Code: "DeadlineExceeded"}}},
		{name: "abort code CANCELLED", cfg: fault.Config{Abort: &fault.Abort{Code: "CANCELLED"}}},
		{name: "abort code number", cfg: fault.Config{Abort: &fault.Abort{Code: "14"}}},
		{name: "both, percent bounds", cfg: fault.Config{
			Delay: &fault.Delay{Duration: time.Millisecond, Percent: pct(0)},
			Abort: &fault.Abort{Code: "INTERNAL", Percent: pct(100)}}},
		{name: "header control alone", cfg: fault.Config{HeaderControl: true}},
		{name: "header control sets percents only", cfg: fault.Config{HeaderControl: true,
			Delay: &fault.Delay{Percent: pct(50)}, Abort: &fault.Abort{Message: "chaos"}}},
		{name: "empty", cfg: fault.Config{}, errs: []string{"one of delay, abort and header_control is required"}},
		{name: "percent 150", cfg: fault.Config{Delay: &fault.Delay{Duration: time.Second, Percent: pct(150)}},
			errs: []string{"delay.percent: must be between 0 and 100, got 150"}},
		{name: "negative percent", cfg: fault.Config{Abort: &fault.Abort{Code: "UNAVAILABLE", Percent: pct(-1)}},
			errs: []string{"abort.percent: must be between 0 and 100, got -1"}},
		{name: "NaN percent", cfg: fault.Config{Abort: &fault.Abort{Code: "UNAVAILABLE", Percent: pct(math.NaN())}},
			errs: []string{"abort.percent: must be between 0 and 100"}},
		{name: "negative duration", cfg: fault.Config{Delay: &fault.Delay{Duration: -time.Second}},
			errs: []string{"delay.duration: must be positive, got -1s"}},
		{name: "negative duration with header control", cfg: fault.Config{HeaderControl: true, Delay: &fault.Delay{Duration: -time.Second}},
			errs: []string{"delay.duration: must be positive"}},
		{name: "no duration", cfg: fault.Config{Delay: &fault.Delay{}},
			errs: []string{"delay.duration: required"}},
		{name: "unknown code", cfg: fault.Config{Abort: &fault.Abort{Code: "BROKEN"}},
			errs: []string{`abort.code: "BROKEN" is not a gRPC status code name`}},
		{name: "code out of range", cfg: fault.Config{Abort: &fault.Abort{Code: "17"}},
			errs: []string{`abort.code: "17" is not a gRPC status code`}},
		{name: "OK", cfg: fault.Config{Abort: &fault.Abort{Code: "OK"}},
			errs: []string{"abort.code: OK is not an error"}},
		{name: "no code", cfg: fault.Config{Abort: &fault.Abort{Message: "x"}},
			errs: []string{"abort.code: required"}},
		{name: "every problem at once", cfg: fault.Config{
			Delay: &fault.Delay{Duration: -1, Percent: pct(101)},
			Abort: &fault.Abort{Code: "nope", Percent: pct(200)}},
			errs: []string{"delay.duration:", "delay.percent:", "abort.code:", "abort.percent:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			configtest.Validation(t, tc.cfg.Validate, func() error {
				_, err := fault.New(tc.cfg)
				return err
			}, "fault: ", tc.errs)
		})
	}
}

// TestConfigFile: the filter is registered as "fault", decodes from a
// config file, and its errors point at the file, line and field.
func TestConfigFile(t *testing.T) {
	t.Parallel()
	good := configtest.Head + "routes:\n  - name: r\n    route: c\n    filters:\n      - fault:\n          delay: {duration: 2s, percent: 10}\n          abort: {code: UNAVAILABLE, message: injected, percent: 5}\n"
	bad := configtest.Head + "routes:\n  - name: r\n    route: c\n    filters:\n      - fault:\n          delay: {duration: -1s, percent: 150}\n          abort:\n            code: BROKEN\n"
	got := configtest.FilterFile(t, fault.Name, good, bad, []string{
		"m.yaml:8:29: routes[0].filters[0].fault.delay.duration: must be positive",
		"m.yaml:8:43: routes[0].filters[0].fault.delay.percent: must be between 0 and 100, got 150",
		`m.yaml:10:19: routes[0].filters[0].fault.abort.code: "BROKEN" is not a gRPC status code name`,
	}).(*fault.Config)
	if got.Delay == nil || got.Delay.Duration != 2*time.Second || got.Delay.Percent == nil || *got.Delay.Percent != 10 ||
		got.Abort == nil || got.Abort.Code != "UNAVAILABLE" || got.Abort.Message != "injected" || *got.Abort.Percent != 5 || got.HeaderControl {
		t.Fatalf("decoded %+v %+v %+v", got, got.Delay, got.Abort)
	}
}
