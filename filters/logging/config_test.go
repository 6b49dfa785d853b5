package logging_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/pipeline"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  logging.Config
		errs []string // substrings of the error, one per problem; none: valid
	}{
		{name: "zero", cfg: logging.Config{}},
		{name: "full", cfg: logging.Config{
			Message:       "access",
			Headers:       []string{"x-request-id", "X-Tenant", "x-trace-bin"},
			SecretHeaders: []string{"x-api-key"},
			Levels: map[string]string{
				"OK": "debug", "NOT_FOUND": "warn", "not_found": "warn", "DeadlineExceeded": "info",
				"CANCELLED": "debug", "14": "WARN", "internal": "error+4",
			},
		}},
		{name: "authorization", cfg: logging.Config{Headers: []string{"x-request-id", "authorization"}},
			errs: []string{`headers[1]: "authorization" carries credentials`}},
		{name: "case does not hide a secret", cfg: logging.Config{Headers: []string{"Authorization"}},
			errs: []string{`headers[0]: "Authorization" carries credentials`}},
		{name: "cookie", cfg: logging.Config{Headers: []string{"cookie"}},
			errs: []string{`headers[0]: "cookie" carries credentials`}},
		{name: "proxy-authorization", cfg: logging.Config{Headers: []string{"proxy-authorization"}},
			errs: []string{`headers[0]: "proxy-authorization" carries credentials`}},
		{name: "set-cookie", cfg: logging.Config{Headers: []string{"set-cookie"}},
			errs: []string{`headers[0]: "set-cookie" carries credentials`}},
		{name: "configured secret", cfg: logging.Config{Headers: []string{"X-Api-Key"}, SecretHeaders: []string{"x-api-key"}},
			errs: []string{`headers[0]: "X-Api-Key" carries credentials`}},
		{name: "bad keys", cfg: logging.Config{Headers: []string{"", "x request"}, SecretHeaders: []string{"a:b"}},
			errs: []string{"headers[0]: empty key", `headers[1]: "x request" is not a metadata key`, `secret_headers[0]: "a:b" is not a metadata key`}},
		{name: "pseudo-header", cfg: logging.Config{Headers: []string{":authority"}},
			errs: []string{`headers[0]: ":authority" is not a metadata key`}},
		{name: "duplicate", cfg: logging.Config{Headers: []string{"x-a", "X-A"}},
			errs: []string{`headers[1]: "X-A" is listed twice`}},
		{name: "output", cfg: logging.Config{Output: "stderr", FlushInterval: 50 * time.Millisecond}},
		{name: "negative flush interval", cfg: logging.Config{Output: "stderr", FlushInterval: -time.Second},
			errs: []string{"flush_interval: -1s is negative"}},
		{name: "flush interval without output", cfg: logging.Config{FlushInterval: time.Second},
			errs: []string{"flush_interval: needs output"}},
		{name: "bad levels", cfg: logging.Config{Levels: map[string]string{"NOPE": "info", "OK": "loud", "17": "info", "-1": "info"}},
			errs: []string{`levels: "-1" is not a gRPC status code name`, `levels: "17" is not`, `levels: "NOPE" is not`, `levels: OK: "loud" is not a level`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := tc.cfg.Validate()
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				f, err := tc.cfg.Build(pipeline.BuildEnv{})
				if err != nil {
					t.Fatalf("Build: %v", err)
				}
				if err := f.(io.Closer).Close(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate accepted the config")
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.errs) {
				t.Errorf("Validate reported %d problems, want %d:\n%v", len(lines), len(tc.errs), err)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q:\n%v", want, err)
				}
			}
			if _, err := tc.cfg.Build(pipeline.BuildEnv{}); err == nil || !strings.HasPrefix(err.Error(), "logging: ") {
				t.Errorf("Build: %v, want an error starting with the filter's name", err)
			}
		})
	}
}

// TestDefaultLevel pins the documented default levels of all codes.
func TestDefaultLevel(t *testing.T) {
	t.Parallel()
	info := map[codes.Code]bool{
		codes.OK: true, codes.Canceled: true, codes.InvalidArgument: true, codes.NotFound: true,
		codes.AlreadyExists: true, codes.PermissionDenied: true, codes.ResourceExhausted: true,
		codes.FailedPrecondition: true, codes.OutOfRange: true, codes.Unauthenticated: true,
	}
	for c := codes.OK; c <= 20; c++ {
		want := slog.LevelError
		if info[c] {
			want = slog.LevelInfo
		}
		if got := logging.DefaultLevel(c); got != want {
			t.Errorf("DefaultLevel(%v) = %v, want %v", c, got, want)
		}
	}
}

// TestUpstreamsText pins the text form of the fan-out list, as
// slog.TextHandler writes it.
func TestUpstreamsText(t *testing.T) {
	t.Parallel()
	ups := logging.Upstreams{
		{Upstream: pipeline.Upstream{Cluster: "machines", Member: "n0"}, Code: codes.OK, Duration: 1204500 * time.Nanosecond},
		{Upstream: pipeline.Upstream{Cluster: "machines", Member: "n1"}, Code: codes.Unavailable, Duration: 310 * time.Microsecond},
	}
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, &slog.HandlerOptions{ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}}))
	log.Info("x", logging.KeyUpstreams, ups)
	want := `level=INFO msg=x upstreams="machines/n0=OK(1.205ms) machines/n1=Unavailable(0.31ms)"` + "\n"
	if b.String() != want {
		t.Errorf("got  %s want %s", b.String(), want)
	}
}
