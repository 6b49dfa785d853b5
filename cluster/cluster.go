package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// DefaultConnectTimeout is the shortest time a connection attempt to an
// upstream may take before it is abandoned (grpc-go's MinConnectTimeout; an
// attempt may last longer when the reconnect backoff has grown past it). It
// is lower than grpc-go's 20 s default so that calls to an upstream that
// accepts TCP but never speaks HTTP/2 fail with UNAVAILABLE sooner.
const DefaultConnectTimeout = 5 * time.Second

// DefaultMaxMessageSize is the largest response message a cluster accepts
// from its upstream, the same as the server's default limit each way.
// grpc-go's own 4 MiB client default would make the proxy refuse answers its
// clients accept. Change it with [Config.MaxMessageSize].
const DefaultMaxMessageSize = 64 << 20

// Config describes one cluster. Exactly one of Target and Addresses is set.
type Config struct {
	// Name identifies the cluster in routes, logs and metrics.
	Name string `yaml:"name"`
	// Target is a grpc target URI: "dns:///backend:9090",
	// "passthrough:///10.0.0.1:9090", "unix:///run/app.sock", or a bare
	// "host:port" (resolved with DNS, as grpc.NewClient does).
	Target string `yaml:"target"`
	// Addresses is a static list of "host:port" addresses, balanced with
	// LoadBalancing (round_robin by default).
	Addresses []string `yaml:"addresses"`
	// LoadBalancing is the grpc load-balancing policy: "round_robin" or
	// "pick_first". Default: round_robin for Addresses, pick_first for
	// Target (a resolver's own service config is ignored, except xDS's).
	LoadBalancing string `yaml:"load_balancing"`
	// ConnectTimeout is how long a connection attempt may take at least
	// before it is abandoned and the upstream counts as unavailable
	// (grpc-go's MinConnectTimeout; later attempts may take as long as the
	// reconnect backoff). Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// TLS, when set, secures the connections to the upstream; nil means
	// plaintext. The cluster uses a copy whose MinVersion is at least TLS
	// 1.2, whatever this one says.
	TLS *tls.Config `yaml:"-"`
	// Keepalive, when set, sends HTTP/2 pings on idle connections.
	Keepalive *keepalive.ClientParameters `yaml:"-"`
	// MaxMessageSize is the largest message sent to or received from the
	// upstream, in bytes. Default 64 MiB, the server's default; keep the two
	// equal so that the proxy refuses nothing one side accepts.
	MaxMessageSize int `yaml:"max_message_size"`
	// CircuitBreakers limit the calls in flight to the upstream. Default:
	// no limit.
	CircuitBreakers CircuitBreakers `yaml:"circuit_breakers"`
	// Retry retries failed calls to the methods it names, which must be
	// idempotent. Default: no retries (besides grpc-go's transparent
	// retry of attempts the upstream never received).
	Retry []RetryPolicy `yaml:"retry"`
	// RetryThrottling, when set, stops retries while many calls fail.
	RetryThrottling *RetryThrottling `yaml:"retry_throttling"`
	// RetryBufferSize is how many request bytes a call keeps for replaying
	// to a retry attempt, in bytes; a call that sends more is not retried
	// after that. Default 256 KiB (grpc-go's default).
	RetryBufferSize int `yaml:"retry_buffer_size"`
	// MeterProvider receives the cluster's metrics (the circuit breakers'
	// overflow counter). Default: otel.GetMeterProvider().
	MeterProvider metric.MeterProvider `yaml:"-"`
	// DialOptions are appended to the options Manifold sets, and win over
	// them.
	DialOptions []grpc.DialOption `yaml:"-"`
}

// Validate reports the first problem with c, naming the field.
func (c *Config) Validate() error {
	switch {
	case c.Name == "":
		return errors.New("name: required")
	case c.Target == "" && len(c.Addresses) == 0:
		return fmt.Errorf("cluster %q: one of target and addresses is required", c.Name)
	case c.Target != "" && len(c.Addresses) > 0:
		return fmt.Errorf("cluster %q: target and addresses are exclusive", c.Name)
	case c.MaxMessageSize < 0:
		return fmt.Errorf("cluster %q: max_message_size: must not be negative", c.Name)
	case c.ConnectTimeout < 0:
		return fmt.Errorf("cluster %q: connect_timeout: must not be negative", c.Name)
	}
	for i, a := range c.Addresses {
		_, port, err := net.SplitHostPort(a)
		if err != nil || port == "" || strings.Contains(a, "/") {
			return fmt.Errorf("cluster %q: addresses[%d]: %q is not host:port", c.Name, i, a)
		}
	}
	switch c.LoadBalancing {
	case "", "round_robin", "pick_first":
	default:
		return fmt.Errorf("cluster %q: load_balancing: unknown policy %q (want round_robin or pick_first)", c.Name, c.LoadBalancing)
	}
	if c.TLS != nil && c.TLS.MaxVersion != 0 && c.TLS.MaxVersion < tls.VersionTLS12 {
		return fmt.Errorf("cluster %q: tls: MaxVersion %s is below TLS 1.2, the least the cluster allows", c.Name, tls.VersionName(c.TLS.MaxVersion))
	}
	if err := c.CircuitBreakers.validate(); err != nil {
		return fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	if err := validateRetry(c.Retry, c.RetryThrottling, c.RetryBufferSize); err != nil {
		return fmt.Errorf("cluster %q: %w", c.Name, err)
	}
	return nil
}

// Cluster is one upstream: a shared client connection. It is safe for
// concurrent use.
type Cluster struct {
	name    string
	conn    *grpc.ClientConn
	breaker *breaker // nil without circuit breaker limits

	// Readiness watching, started by WatchReady.
	watchOnce sync.Once
	stop      context.CancelFunc
	watching  sync.WaitGroup
	ready     atomic.Bool
}

// New creates the cluster's connection. It does not connect: grpc-go
// connects on the first call and keeps reconnecting in the background, so a
// proxy starts even when its upstreams are not up yet.
func New(cfg Config) (*Cluster, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	timeout := cfg.ConnectTimeout
	if timeout == 0 {
		timeout = DefaultConnectTimeout
	}
	maxMsg := cfg.MaxMessageSize
	if maxMsg == 0 {
		maxMsg = DefaultMaxMessageSize
	}
	creds := insecure.NewCredentials()
	if cfg.TLS != nil {
		creds = credentials.NewTLS(minTLS12(cfg.TLS))
	}
	callOpts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)}
	if cfg.RetryBufferSize > 0 {
		callOpts = append(callOpts, grpc.MaxRetryRPCBufferSize(cfg.RetryBufferSize))
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.DefaultConfig,
			MinConnectTimeout: timeout,
		}),
		grpc.WithDefaultCallOptions(callOpts...),
	}
	var b *breaker
	if cfg.CircuitBreakers.enabled() {
		mp := cfg.MeterProvider
		if mp == nil {
			mp = otel.GetMeterProvider()
		}
		var err error
		if b, err = newBreaker(cfg.Name, cfg.CircuitBreakers, mp); err != nil {
			return nil, fmt.Errorf("cluster %q: %w", cfg.Name, err)
		}
		// Chained before the chained interceptors of DialOptions, so that
		// they see every call first.
		opts = append(opts, grpc.WithChainStreamInterceptor(b.stream), grpc.WithChainUnaryInterceptor(b.unary))
	}
	if cfg.Keepalive != nil {
		opts = append(opts, grpc.WithKeepaliveParams(*cfg.Keepalive))
	}
	target := cfg.Target
	lb := cfg.LoadBalancing
	if len(cfg.Addresses) > 0 {
		// A per-connection manual resolver: grpc-go's machinery, no global
		// registration.
		r := manual.NewBuilderWithScheme("manifold-static")
		state := resolver.State{}
		for _, a := range cfg.Addresses {
			// ServerName: each address is its own authority, for the
			// :authority header and the name TLS checks (unless TLS
			// sets ServerName), as with a passthrough:/// target, rather
			// than the resolver's made-up target.
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a, ServerName: a}}})
		}
		r.InitialState(state)
		opts = append(opts, grpc.WithResolvers(r))
		target = r.Scheme() + ":///" + cfg.Name
		if lb == "" {
			lb = "round_robin"
		}
	}
	sc, err := serviceConfig(lb, cfg.Retry, cfg.RetryThrottling)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cfg.Name, err)
	}
	if sc != "" {
		opts = append(opts, grpc.WithDefaultServiceConfig(sc))
	}
	if !strings.HasPrefix(target, "xds:") {
		// Retries and balancing come from this config, never from the
		// resolver: grpc-go's DNS resolver would otherwise take them from
		// TXT records, letting whoever controls the zone turn retries on
		// for methods that are not idempotent. xDS delivers its routing
		// and balancing as service config, so it keeps that.
		opts = append(opts, grpc.WithDisableServiceConfig())
	}
	opts = append(opts, cfg.DialOptions...)
	conn, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("cluster %q: %w", cfg.Name, err)
	}
	return &Cluster{name: cfg.Name, conn: conn, breaker: b}, nil
}

// minTLS12 returns a copy of tc that allows no TLS version below 1.2.
func minTLS12(tc *tls.Config) *tls.Config {
	tc = tc.Clone()
	if tc.MinVersion < tls.VersionTLS12 {
		tc.MinVersion = tls.VersionTLS12
	}
	return tc
}

// Name returns the cluster's name.
func (c *Cluster) Name() string { return c.name }

// Conn returns the cluster's shared connection.
func (c *Cluster) Conn() *grpc.ClientConn { return c.conn }

// Close closes the connection; calls still using it fail with CANCELED.
func (c *Cluster) Close() error {
	c.watchOnce.Do(func() {}) // no watcher may start after Close
	if c.stop != nil {
		c.stop()
		c.watching.Wait()
	}
	return c.conn.Close()
}

// WatchReady starts connecting now instead of at the first call, and
// watches the connection until it has been READY once, for readiness
// reports. Calling it again does nothing.
func (c *Cluster) WatchReady() {
	c.watchOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		c.stop = cancel
		c.watching.Add(1)
		go func() {
			defer c.watching.Done()
			c.conn.Connect()
			for {
				s := c.conn.GetState()
				if s == connectivity.Ready {
					c.ready.Store(true)
					return
				}
				if s == connectivity.Idle {
					c.conn.Connect()
				}
				if !c.conn.WaitForStateChange(ctx, s) {
					return
				}
			}
		}()
	})
}

// Ready reports nil once the cluster's connection has been READY at least
// once since WatchReady, or why not.
func (c *Cluster) Ready() error {
	if c.ready.Load() {
		return nil
	}
	return fmt.Errorf("cluster %q has not connected yet (state %v)", c.name, c.conn.GetState())
}
