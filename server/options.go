package server

import (
	"crypto/tls"
	"io"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// DefaultMaxMessageSize is the default limit on one message, each way.
// grpc-go's own 4 MiB receive default would make a transparent proxy refuse
// calls its upstreams accept.
const DefaultMaxMessageSize = 64 << 20

// Option configures [New].
type Option func(*options)

type options struct {
	logger       *slog.Logger
	maxRecv      int
	maxSend      int
	tls          *tls.Config
	keepalive    keepalive.ServerParameters
	enforcement  keepalive.EnforcementPolicy
	forwardedFor bool
	counters     bool
	closers      []io.Closer
	grpcOptions  []grpc.ServerOption
}

func defaults() options {
	return options{
		logger:  slog.Default(),
		maxRecv: DefaultMaxMessageSize,
		maxSend: DefaultMaxMessageSize,
		keepalive: keepalive.ServerParameters{
			Time:    2 * time.Hour,
			Timeout: 20 * time.Second,
		},
		enforcement: keepalive.EnforcementPolicy{
			MinTime:             10 * time.Second,
			PermitWithoutStream: true,
		},
		forwardedFor: true,
	}
}

// WithLogger sets the logger for panics and lifecycle events. Default:
// [slog.Default].
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithMaxMessageSize sets the largest message the proxy receives and sends,
// in bytes. Default 64 MiB each.
func WithMaxMessageSize(recv, send int) Option {
	return func(o *options) { o.maxRecv, o.maxSend = recv, send }
}

// WithTLS serves TLS with cfg. For mutual TLS, set cfg.ClientAuth and
// cfg.ClientCAs.
func WithTLS(cfg *tls.Config) Option { return func(o *options) { o.tls = cfg } }

// WithKeepalive sets the server's keepalive pings and the policy it enforces
// on clients' pings (clients that ping more often than policy.MinTime are
// disconnected with GOAWAY "too_many_pings").
func WithKeepalive(params keepalive.ServerParameters, policy keepalive.EnforcementPolicy) Option {
	return func(o *options) { o.keepalive, o.enforcement = params, policy }
}

// WithForwardedFor turns appending the client's address to the
// x-forwarded-for request header on or off. Default on.
func WithForwardedFor(on bool) Option { return func(o *options) { o.forwardedFor = on } }

// WithCounters makes the server keep every call's [pipeline.Counters],
// whatever its handler reports. By default it keeps them only when the
// handler reports [pipeline.TouchCounters]: keeping them costs a grpc stats
// handler on every call.
func WithCounters(on bool) Option { return func(o *options) { o.counters = on } }

// WithCloser registers resources, such as clusters, that Shutdown closes
// after the last call has ended.
func WithCloser(c ...io.Closer) Option {
	return func(o *options) { o.closers = append(o.closers, c...) }
}

// WithGRPCOptions adds grpc-go server options after Manifold's own, so they
// win.
func WithGRPCOptions(opts ...grpc.ServerOption) Option {
	return func(o *options) { o.grpcOptions = append(o.grpcOptions, opts...) }
}
