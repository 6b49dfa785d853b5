package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/manifold-grpc/manifold/pipeline"
)

// DefaultMessage is the message of every record unless [Config.Message]
// says otherwise; it is the one go-grpc-middleware's logging interceptor
// writes when a call ends, so existing log queries keep working.
const DefaultMessage = "finished call"

// Config is the access log's configuration. The zero value logs every call
// with the default levels and no request metadata.
//
// In a config file:
//
//	filters:
//	  - logging:
//	      headers: [x-request-id, x-tenant]
//	      secret_headers: [x-api-key]
//	      levels: {NOT_FOUND: debug, UNAVAILABLE: warn}
type Config struct {
	// Message is the message of every record. Default "finished call".
	Message string `yaml:"message"`

	// Headers lists the request metadata keys whose values are logged, in
	// the group grpc.request.metadata: the values the client sent, or, for
	// a key the client did not send, the value that filters set on the
	// outbound header (a generated request id, say). Keys are
	// case-insensitive; a key with no value is left out; several values
	// are joined with ", "; values of "-bin" keys are logged in base64.
	// Nothing else from the metadata is ever logged.
	//
	// Credentials cannot be listed: authorization, proxy-authorization,
	// cookie, set-cookie and every key in secret_headers make Validate
	// fail, so they never reach a log.
	Headers []string `yaml:"headers"`

	// SecretHeaders names more request metadata keys that must never be
	// logged, such as an API key header: listing one in headers is a
	// config error. It guards the access log against a later edit of
	// headers.
	SecretHeaders []string `yaml:"secret_headers"`

	// Levels sets the record's level for status codes, overriding the
	// defaults one code at a time. Keys are code names in any of the
	// usual spellings (NOT_FOUND, not_found, NotFound; CANCELLED or
	// Canceled) or numbers ("5"); values are slog levels: debug, info,
	// warn, error, optionally with an offset (info+2).
	//
	// Defaults: OK and the client's errors — Canceled, InvalidArgument,
	// NotFound, AlreadyExists, PermissionDenied, ResourceExhausted,
	// FailedPrecondition, OutOfRange, Unauthenticated — at info; the
	// server's errors — Unknown, DeadlineExceeded, Aborted, Unimplemented,
	// Internal, Unavailable, DataLoss — and codes above 16 at error.
	Levels map[string]string `yaml:"levels"`
	// Output sends the records to a destination of their own, one JSON
	// object per line (the object slog's JSONHandler writes: time, level,
	// msg, then the record's fields), instead of the process log:
	// "stdout", "stderr" or a file path, opened for appending (created
	// with mode 0640 if missing; a config reload opens it again, so log
	// rotation can move the file and then send the reload signal). Records there are buffered and
	// written every flush_interval or when 64 KiB are waiting, as Envoy's
	// file access logs are: writing each record as its call ends costs a
	// system call per call. If the process dies, the records of the last
	// interval are lost. Levels still apply: a code set below info is not
	// written. Default: the process log, each record as its call ends.
	Output string `yaml:"output"`
	// FlushInterval is the longest a record waits in output's buffer.
	// Default 1s. Only with output.
	FlushInterval time.Duration `yaml:"flush_interval"`
}

// credentialHeaders are the request metadata keys that carry credentials.
// They are never logged, whatever the config says.
var credentialHeaders = []string{"authorization", "proxy-authorization", "cookie", "set-cookie"}

// Validate reports every problem with c, naming the fields by their yaml
// names.
func (c Config) Validate() error {
	var errs []error
	secret := make(map[string]bool, len(credentialHeaders)+len(c.SecretHeaders))
	for _, k := range credentialHeaders {
		secret[k] = true
	}
	for i, k := range c.SecretHeaders {
		if err := validKey(k); err != nil {
			errs = append(errs, fmt.Errorf("secret_headers[%d]: %w", i, err))
			continue
		}
		secret[strings.ToLower(k)] = true
	}
	if c.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("flush_interval: %v is negative", c.FlushInterval))
	}
	if c.FlushInterval != 0 && c.Output == "" {
		errs = append(errs, errors.New("flush_interval: needs output (records to the process log are not buffered)"))
	}
	seen := make(map[string]bool, len(c.Headers))
	for i, k := range c.Headers {
		if err := validKey(k); err != nil {
			errs = append(errs, fmt.Errorf("headers[%d]: %w", i, err))
			continue
		}
		lk := strings.ToLower(k)
		switch {
		case secret[lk]:
			errs = append(errs, fmt.Errorf("headers[%d]: %q carries credentials (built in or listed in secret_headers) and is never logged; remove it", i, k))
		case seen[lk]:
			errs = append(errs, fmt.Errorf("headers[%d]: %q is listed twice", i, k))
		}
		seen[lk] = true
	}
	if _, err := parseLevels(c.Levels); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// validKey checks a metadata key as grpc-go would send it, ignoring case.
func validKey(k string) error {
	if k == "" {
		return errors.New("empty key")
	}
	if !pipeline.ValidPair(strings.ToLower(k), "") {
		return fmt.Errorf("%q is not a metadata key (letters, digits and -_. only)", k)
	}
	return nil
}

// Build makes the filter, logging to env.Logger ([slog.Default] when nil).
// It implements [pipeline.FilterConfig].
func (c Config) Build(env pipeline.BuildEnv) (pipeline.Filter, error) {
	return New(c, WithLogger(env.Logger))
}

func init() {
	pipeline.Register(pipeline.Module{
		Name: "logging",
		New:  func() pipeline.FilterConfig { return new(Config) },
	})
}

// headerKeys returns the lowercased keys to log. c must be valid.
func (c Config) headerKeys() []string {
	if len(c.Headers) == 0 {
		return nil
	}
	keys := make([]string, len(c.Headers))
	for i, k := range c.Headers {
		keys[i] = strings.ToLower(k)
	}
	return keys
}

// logger returns l, or [slog.Default] for nil.
func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		return slog.Default()
	}
	return l
}

var (
	_ pipeline.FilterConfig = Config{}
	_ pipeline.FilterConfig = (*Config)(nil)
)
