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

// DefaultMaxConcurrentStreams is the default limit on the calls one client
// connection may have open at once (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS).
//
// grpc-go's own default is no limit, and so one connection can make the
// proxy hold any number of calls, each with its upstream stream (about 30
// KiB per idle proxied stream, see docs/performance.md), and any number of
// handler goroutines. 1000 bounds one connection to about 30 MiB of idle
// streams while staying far above what web servers use (Go's net/http 250,
// nginx 128, Envoy's edge advice 100): gRPC clients multiplex long-lived
// streams (watches, subscriptions) over a single connection, and each holds
// its slot for as long as it lives. A grpc-go client that reaches the limit
// does not fail: its next call waits for a slot (or for its deadline), so a
// limit that is too low shows as calls that hang, not as errors. Clients
// that ignore the setting get the extra streams refused with RST_STREAM
// REFUSED_STREAM (grpc-go clients retry those transparently).
const DefaultMaxConcurrentStreams = 1000

// DefaultMaxHeaderListSize is the default limit, in bytes, on one request's
// headers (HTTP/2 SETTINGS_MAX_HEADER_LIST_SIZE): the sum, over every
// header field including the pseudo-headers, of name length + value length
// + 32, as HTTP/2 counts it. Binary ("-bin") values count base64-encoded.
//
// grpc-go's own default is 16 MiB; HTTP/2 headers are not flow-controlled,
// so each stream could make the proxy buffer that much before any call
// exists. 64 KiB is Envoy's default (max_request_headers_kb, 60 KiB)
// rounded up, eight times the 8 KiB that grpc-go and gRPC C-core are moving
// their own default to, so the proxy does not refuse what default upstreams
// accept, and far above the auth filter's 8 KiB token limit.
//
// A request over the limit fails without reaching the chain. grpc-go clients
// see the limit in the server's settings and fail the call themselves,
// without sending it: INTERNAL "header list size to send violates the
// maximum size (65536 bytes) set by server"; the connection stays up. A
// client that ignores the setting gets the stream reset with
// FRAME_SIZE_ERROR (INTERNAL for gRPC clients) when its headers are a
// little over the limit, and the connection closed when they are far over
// it (a single value longer than the whole limit, or more than twice the
// limit in one frame), as golang.org/x/net/http2 decides.
const DefaultMaxHeaderListSize = 64 << 10

// Option configures [New].
type Option func(*options)

type options struct {
	logger        *slog.Logger
	maxRecv       int
	maxSend       int
	maxStreams    uint32
	maxHeaders    uint32
	streamWorkers uint32
	tls           *tls.Config
	keepalive     keepalive.ServerParameters
	enforcement   keepalive.EnforcementPolicy
	forwardedFor  bool
	counters      bool
	closers       []io.Closer
	grpcOptions   []grpc.ServerOption
}

func defaults() options {
	return options{
		logger:  slog.Default(),
		maxRecv: DefaultMaxMessageSize,
		maxSend: DefaultMaxMessageSize,

		maxStreams: DefaultMaxConcurrentStreams,
		maxHeaders: DefaultMaxHeaderListSize,
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

// WithMaxConcurrentStreams sets how many calls one client connection may
// have open at once; 0 means no limit (grpc-go's default). Default
// [DefaultMaxConcurrentStreams], whose comment explains the choice and what
// clients see at the limit.
func WithMaxConcurrentStreams(n uint32) Option { return func(o *options) { o.maxStreams = n } }

// WithMaxHeaderListSize sets the largest request header list the server
// accepts, in bytes, as HTTP/2 counts it; it must be positive. Default
// [DefaultMaxHeaderListSize], whose comment explains the choice and what
// clients see over the limit.
func WithMaxHeaderListSize(n uint32) Option { return func(o *options) { o.maxHeaders = n } }

// WithStreamWorkers sets how many long-lived goroutines serve new calls
// (grpc-go's [grpc.NumStreamWorkers]); 0, the default, starts a goroutine
// per call, as grpc-go does. A call that finds every worker busy gets its
// own goroutine, so long streams never wait for a worker. Measured with
// the load benchmark (docs/performance.md), workers did not lower the
// proxy's CPU per call at GOMAXPROCS=1 (1 or 64 workers, within the noise
// of 0), so they are off unless asked for.
func WithStreamWorkers(n uint32) Option {
	return func(o *options) { o.streamWorkers = n }
}

// WithTLS serves TLS with cfg. For mutual TLS, set cfg.ClientAuth and
// cfg.ClientCAs; for certificates that are reloaded when their files
// change, pass [CertReloader.TLSConfig].
//
// The server never negotiates a version below TLS 1.2: a cfg.MinVersion of
// 0 becomes [tls.VersionTLS12], below that [New] fails, and the same holds
// for configs returned by cfg.GetConfigForClient (raised to TLS 1.2 at each
// handshake).
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
// handler reports [pipeline.TouchCounters]: keeping them costs an
// allocation per call and two atomic adds per message.
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
