package config

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/discovery"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
	"github.com/manifold-grpc/manifold/server"
)

// Proxy is a config built into its running parts: the handler every
// listener serves (the global chain around the router), a server per
// listener, and what must be closed after the servers stopped.
type Proxy struct {
	Handler   pipeline.Handler
	Listeners []Listener
	Servers   []*server.Server
	// Clusters are every upstream connection, fan-out members included.
	Clusters []*cluster.Cluster
	// Required are the clusters readiness waits for: every cluster not
	// marked optional, and the fan-out members marked required.
	Required []*cluster.Cluster
	// Checks are the readiness checks of filters that have one (an auth
	// filter's JWKS, say), by filter name.
	Checks  map[string]func() error
	closers []io.Closer
}

// Close closes the upstream connections and every filter that holds
// resources (a JWKS refresher, say). Call it after the servers stopped.
func (p *Proxy) Close() error {
	var errs []error
	for i := len(p.closers) - 1; i >= 0; i-- {
		if err := p.closers[i].Close(); err != nil {
			errs = append(errs, err)
		}
	}
	p.closers = nil
	return errors.Join(errs...)
}

// Options are what the program running a config adds to it.
type Options struct {
	// Logger is the server's logger; default slog.Default().
	Logger *slog.Logger
	// DialOptions are added to every upstream connection (a telemetry stats
	// handler, say).
	DialOptions []grpc.DialOption
	// ServerOptions are added to every listener's server.
	ServerOptions []server.Option
}

// Build makes the proxy that cfg describes. Nothing listens yet: serve
// each of p.Servers on a listener for the matching p.Listeners address.
func Build(cfg *Config, o Options) (*Proxy, error) {
	p, err := BuildRoutes(cfg, o)
	if err != nil {
		return nil, err
	}
	if err := p.newServers(cfg, o); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// BuildRoutes makes everything of cfg but the servers: clusters, fan-out
// groups, filters and routes, as a config reload needs to swap into running
// servers ([server.Server.Swap]).
func BuildRoutes(cfg *Config, o Options) (*Proxy, error) {
	p := &Proxy{Listeners: cfg.Listeners}
	if err := p.build(cfg, o); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// build fills p; on error the caller closes what was made.
func (p *Proxy) build(cfg *Config, o Options) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	env := pipeline.BuildEnv{Logger: log}

	terminals := map[string]pipeline.Handler{}
	for _, c := range cfg.Clusters {
		cc := cluster.Config{Name: c.Name, Target: c.Target, Addresses: c.Addresses, LoadBalancing: c.LoadBalancing, ConnectTimeout: c.ConnectTimeout, MaxMessageSize: c.MaxMessageSize, CircuitBreakers: c.CircuitBreakers, Retry: c.Retry, RetryThrottling: c.RetryThrottling, RetryBufferSize: c.RetryBufferSize, DialOptions: o.DialOptions, Keepalive: c.Keepalive.params()}
		if cc.TLS, err = c.TLS.config(); err != nil {
			return fmt.Errorf("clusters %s: %w", c.Name, err)
		}
		cl, err := cluster.New(cc)
		if err != nil {
			return err
		}
		p.closers = append(p.closers, cl)
		p.Clusters = append(p.Clusters, cl)
		if !c.Optional {
			p.Required = append(p.Required, cl)
		}
		kinds, err := methodKinds(c.Kinds, c.Protoset, c.protoset)
		if err != nil {
			return fmt.Errorf("clusters %s: protoset: %w", c.Name, err)
		}
		var opts []route.Option
		if kinds != nil {
			opts = append(opts, route.WithKinds(kinds))
		}
		terminals["route:"+c.Name] = route.New(cl, opts...)
	}
	for i := range cfg.Fanout {
		g := &cfg.Fanout[i]
		if g.MembersFrom != "" {
			t, err := p.discoveredGroup(g, o, log)
			if err != nil {
				return err
			}
			terminals["fanout:"+g.Name] = t
			continue
		}
		var members []fanout.Member
		var conns []grpc.ClientConnInterface
		for _, m := range g.Members {
			cl, err := m.MemberConnection.cluster(g.Name+"/"+m.Name, cluster.Config{Target: m.Target}, o.DialOptions)
			if err != nil {
				return fmt.Errorf("fanout %s member %s: %w", g.Name, m.Name, err)
			}
			p.closers = append(p.closers, cl)
			p.Clusters = append(p.Clusters, cl)
			if m.Required {
				p.Required = append(p.Required, cl)
			}
			members = append(members, fanout.Member{Name: m.Name, Conn: cl.Conn()})
			conns = append(conns, cl.Conn())
		}
		fc := g.fanoutConfig()
		if fc.Kinds, err = g.kinds(conns); err != nil {
			return fmt.Errorf("fanout %s: %w", g.Name, err)
		}
		t, err := fanout.New(members, fc)
		if err != nil {
			return err
		}
		terminals["fanout:"+g.Name] = t
	}

	var routes []router.Route
	for _, r := range cfg.Routes {
		key := "route:" + r.Route
		if r.Fanout != "" {
			key = "fanout:" + r.Fanout
		}
		filters, err := p.filters(r.Filters, env)
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
		chain, err := pipeline.Build(filters, terminals[key], pipeline.WithLogger(log))
		if err != nil {
			return fmt.Errorf("route %s: %w", r.Name, err)
		}
		routes = append(routes, router.Route{Name: r.Name, Match: r.Match, Handler: chain})
	}
	rt, err := router.New(routes...)
	if err != nil {
		return err
	}
	global, err := p.filters(cfg.Filters, env)
	if err != nil {
		return err
	}
	chain, err := pipeline.Build(global, rt, pipeline.WithLogger(log))
	if err != nil {
		return err
	}
	p.Handler = chain
	return nil
}

// newServers makes one server per listener, all serving p.Handler.
func (p *Proxy) newServers(cfg *Config, o Options) error {
	log := o.Logger
	if log == nil {
		log = slog.Default()
	}
	for _, l := range cfg.Listeners {
		opts := append([]server.Option{server.WithLogger(log)}, o.ServerOptions...)
		if l.MaxMessageSize > 0 {
			opts = append(opts, server.WithMaxMessageSize(l.MaxMessageSize, l.MaxMessageSize))
		}
		if l.ForwardedFor != nil {
			opts = append(opts, server.WithForwardedFor(*l.ForwardedFor))
		}
		if l.Keepalive != nil {
			opts = append(opts, server.WithKeepalive(l.Keepalive.params()))
		}
		if l.MaxConcurrentStreams != nil {
			opts = append(opts, server.WithMaxConcurrentStreams(*l.MaxConcurrentStreams))
		}
		if l.MaxHeaderListSize > 0 {
			opts = append(opts, server.WithMaxHeaderListSize(l.MaxHeaderListSize))
		}
		var certs *server.CertReloader
		if l.TLS != nil {
			var err error
			if certs, err = l.TLS.reloader(log.With(slog.String("listener", l.Address))); err != nil {
				return p.stopServers(fmt.Errorf("listener %s: %w", l.Address, err))
			}
			opts = append(opts, server.WithTLS(certs.TLSConfig()), server.WithCloser(certs))
		}
		srv, err := server.New(p.Handler, opts...)
		if err != nil {
			if certs != nil {
				_ = certs.Close()
			}
			return p.stopServers(err)
		}
		p.Servers = append(p.Servers, srv)
	}
	return nil
}

// stopServers stops the servers made so far, never served, so that what
// they hold (certificate reloaders) is released, and returns err.
func (p *Proxy) stopServers(err error) error {
	for _, s := range p.Servers {
		_ = s.Shutdown(context.Background())
	}
	p.Servers = nil
	return err
}

// filters builds a chain's filters, keeping those that hold resources to
// close them later.
func (p *Proxy) filters(fs []Filter, env pipeline.BuildEnv) ([]pipeline.Filter, error) {
	out := make([]pipeline.Filter, 0, len(fs))
	for _, f := range fs {
		built, err := f.Config.Build(env)
		if err != nil {
			return nil, fmt.Errorf("filter %s: %w", f.Name, err)
		}
		if c, ok := built.(io.Closer); ok {
			p.closers = append(p.closers, c)
		}
		if r, ok := built.(interface{ Ready() error }); ok {
			if p.Checks == nil {
				p.Checks = map[string]func() error{}
			}
			p.Checks[fmt.Sprintf("filter %s #%d", f.Name, len(p.Checks)+1)] = r.Ready
		}
		out = append(out, built)
	}
	return out, nil
}

// cluster connects to one fan-out member, named name, at the target or
// addresses of cc.
func (mc *MemberConnection) cluster(name string, cc cluster.Config, dialOpts []grpc.DialOption) (*cluster.Cluster, error) {
	cc.Name = name
	cc.ConnectTimeout = mc.ConnectTimeout
	cc.MaxMessageSize = mc.MaxMessageSize
	cc.DialOptions = dialOpts
	cc.Keepalive = mc.Keepalive.params()
	var err error
	if cc.TLS, err = mc.TLS.config(); err != nil {
		return nil, err
	}
	return cluster.New(cc)
}

// discoveredGroup builds a fan-out group whose members come from the
// resolver target g.MembersFrom. Each member found gets its own connection
// to its one address (never re-resolved); the watcher is closed with the
// proxy, and a member's connection when the last call using it ends.
func (p *Proxy) discoveredGroup(g *FanoutGroup, o Options, log *slog.Logger) (*fanout.Terminal, error) {
	dial := func(a resolver.Address) (discovery.Conn, error) {
		name := discovery.Name(a)
		if name == "" {
			name = a.Addr
		}
		cl, err := g.Member.cluster(g.Name+"/"+name, cluster.Config{Addresses: []string{a.Addr}}, o.DialOptions)
		if err != nil {
			return nil, err
		}
		return clusterConn{cl.Conn(), cl}, nil
	}
	opts := []discovery.Option{discovery.WithLogger(log.With(slog.String("fanout", g.Name)))}
	if g.Refresh > 0 {
		opts = append(opts, discovery.WithRefresh(g.Refresh))
	}
	m, err := discovery.Watch(g.MembersFrom, dial, opts...)
	if err != nil {
		return nil, fmt.Errorf("fanout %s: members_from: %w", g.Name, err)
	}
	p.closers = append(p.closers, m)
	src := fanout.Discovered(m)
	fc := g.fanoutConfig()
	if fc.Kinds, err = g.kinds([]grpc.ClientConnInterface{fanout.AnyMember(src)}); err != nil {
		return nil, fmt.Errorf("fanout %s: %w", g.Name, err)
	}
	return fanout.NewDynamic(src, fc)
}

// clusterConn is a discovered member's connection: calls go to the
// cluster's ClientConn, Close closes the cluster.
type clusterConn struct {
	grpc.ClientConnInterface
	io.Closer
}

// fanoutConfig is the group's terminal config, without its method kinds
// (see kinds), so that validating it does no I/O.
func (g *FanoutGroup) fanoutConfig() fanout.Config {
	return fanout.Config{
		Name: g.Name, NodesKey: g.NodesKey, MaxTargets: g.MaxTargets, MaxResponseSize: g.MaxResponseSize,
		ReserveFraction: g.ReserveFraction, MinReserve: g.MinReserve, UpstreamTimeout: g.UpstreamTimeout,
		QueueSize: g.QueueSize, HeaderWait: g.HeaderWait, Policy: g.Policy, FailFast: g.FailFast, Layout: g.Layout,
	}
}

// kinds is the group's method-kind resolver: its patterns, its protoset
// (loaded once, by validation, when the config came from Load), then the
// members' reflection over conns.
func (g *FanoutGroup) kinds(conns []grpc.ClientConnInterface) (methodkind.Resolver, error) {
	r, err := methodKinds(g.Kinds, g.Protoset, g.protoset)
	if err != nil {
		return nil, err
	}
	if g.Reflection == nil || *g.Reflection {
		return methodkind.Chain(r, methodkind.NewReflection(conns)), nil
	}
	return methodkind.Chain(r), nil
}

// methodKinds is the resolver of configured kinds and protoset, nil for
// neither. loaded is the protoset validation loaded, if it did.
func methodKinds(kinds methodkind.Patterns, protoset string, loaded *methodkind.Protoset) (methodkind.Resolver, error) {
	var resolvers []methodkind.Resolver
	if len(kinds) > 0 {
		resolvers = append(resolvers, kinds)
	}
	if protoset != "" {
		if loaded == nil {
			var err error
			if loaded, err = methodkind.LoadProtoset(protoset); err != nil {
				return nil, err
			}
		}
		resolvers = append(resolvers, loaded)
	}
	if len(resolvers) == 0 {
		return nil, nil
	}
	return methodkind.Chain(resolvers...), nil
}

// reloader loads the listener's certificate files and reloads them when
// they change.
func (t *ServerTLS) reloader(log *slog.Logger) (*server.CertReloader, error) {
	opts := []server.CertOption{server.WithReloadLogger(log)}
	switch {
	case t.ReloadInterval < 0:
		opts = append(opts, server.WithReloadInterval(0))
	case t.ReloadInterval > 0:
		opts = append(opts, server.WithReloadInterval(t.ReloadInterval))
	}
	if t.MinVersion != "" {
		v, err := server.ParseTLSVersion(t.MinVersion)
		if err != nil {
			return nil, err
		}
		opts = append(opts, server.WithMinTLSVersion(v))
	}
	if t.ClientAuth == "optional" {
		opts = append(opts, server.WithClientAuth(tls.VerifyClientCertIfGiven))
	}
	return server.NewCertReloader(t.CertFile, t.KeyFile, t.ClientCAFile, opts...)
}

func (t *ClientTLS) config() (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	tc := &tls.Config{ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := loadPool(t.CAFile)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := server.ParseCertPool(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return pool, nil
}

// params are grpc-go's server keepalive settings, defaults filled in.
func (k *ServerKeepalive) params() (keepalive.ServerParameters, keepalive.EnforcementPolicy) {
	p := keepalive.ServerParameters{Time: 2 * time.Hour, Timeout: 20 * time.Second}
	e := keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}
	if k.Time > 0 {
		p.Time = k.Time
	}
	if k.Timeout > 0 {
		p.Timeout = k.Timeout
	}
	if k.MinTime > 0 {
		e.MinTime = k.MinTime
	}
	if k.PermitWithoutStream != nil {
		e.PermitWithoutStream = *k.PermitWithoutStream
	}
	return p, e
}

// params are grpc-go's client keepalive settings, nil when unset.
func (k *ClientKeepalive) params() *keepalive.ClientParameters {
	if k == nil {
		return nil
	}
	return &keepalive.ClientParameters{Time: k.Time, Timeout: k.Timeout, PermitWithoutStream: k.PermitWithoutStream}
}
