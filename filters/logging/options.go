package logging

import "log/slog"

// Option configures [New].
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger that receives the records. Default:
// [slog.Default]. A nil l keeps the default.
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }
