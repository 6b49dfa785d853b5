package auth

import (
	"log/slog"
	"net/http"
	"time"
)

// Option configures [New].
type Option func(*options)

type options struct {
	logger *slog.Logger
	client *http.Client
	now    func() time.Time
	// onVerify is called after each full verification of a token (not
	// after a cache hit). For tests: see export_test.go.
	onVerify func()
}

func defaultOptions() options {
	return options{logger: slog.Default(), now: time.Now}
}

// WithLogger sets the logger that reports failed JWKS fetches. The default
// is [slog.Default]. Tokens are never logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// WithHTTPClient sets the client that fetches JWKS URLs. The default is
// [http.DefaultClient].
func WithHTTPClient(c *http.Client) Option {
	return func(o *options) { o.client = c }
}

// WithClock sets the clock that token times ("exp", "nbf", "iat") are
// checked against. The default is [time.Now]. For tests.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
