package manifold

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// flags are the quick-mode settings.
type flags struct {
	logOut         io.Writer // where logs go; a config file's log section may change the rest
	config         string
	admin          string
	listen         string
	upstream       string
	fanout         string
	protoset       string
	policy         string
	failFast       bool
	connectTimeout time.Duration
	drainTimeout   time.Duration
	maxMessageSize int
	maxStreams     uint
	maxHeaderList  uint
	forwardedFor   bool
	logLevel       slog.Level
	logFormat      string
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("manifold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.config, "config", "", "run from a YAML config `file` instead of quick mode")
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "`address` to serve gRPC on (quick mode)")
	fs.StringVar(&f.admin, "admin", "", "quick mode: serve /healthz, /readyz and /metrics over HTTP on this `address` (off by default; a port alone, like :9901, binds 127.0.0.1)")
	fs.StringVar(&f.upstream, "upstream", "", "`target` to proxy every call to: host:port or a grpc target URI (dns:///, unix:, passthrough:///)")
	fs.StringVar(&f.fanout, "fanout", "", "fan every call out to these `members`: name=target,name=target,… (instead of --upstream)")
	fs.StringVar(&f.protoset, "protoset", "", "a descriptor set `file` (protoc --include_imports --descriptor_set_out) telling unary from streaming methods; with --fanout, without it the members' server reflection is asked; with --upstream, calls to methods it knows send one request are forwarded on one goroutine instead of two")
	fs.StringVar(&f.policy, "fanout-policy", "all", "with --fanout: when a call is answered: all, first, or quorum:N")
	fs.BoolVar(&f.failFast, "fanout-fail-fast", false, "with --fanout: any member's error becomes the call's status")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", cluster.DefaultConnectTimeout, "bound on one connection attempt to the upstream")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long calls in flight may take to finish before they are cancelled")
	fs.IntVar(&f.maxMessageSize, "max-message-size", server.DefaultMaxMessageSize, "largest message, in `bytes`, accepted and sent each way")
	fs.UintVar(&f.maxStreams, "max-concurrent-streams", server.DefaultMaxConcurrentStreams, "most calls one client connection may have open at once; 0 = no limit")
	fs.UintVar(&f.maxHeaderList, "max-header-list-size", server.DefaultMaxHeaderListSize, "largest request header list, in `bytes` as HTTP/2 counts them")
	fs.BoolVar(&f.forwardedFor, "x-forwarded-for", true, "append the client's address to the x-forwarded-for request header")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: manifold --listen ADDR --upstream TARGET [flags]\n"+
			"       manifold --listen ADDR --fanout NAME=TARGET,NAME=TARGET,... [flags]\n"+
			"       manifold --config FILE\n"+
			"       manifold validate --config FILE\n\n"+
			"Manifold proxies every gRPC call it receives on ADDR to TARGET, unchanged,\n"+
			"or to every member named in --fanout, merging their answers.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if f.config != "" {
		var quickOnly []string
		fs.Visit(func(fl *flag.Flag) {
			switch fl.Name {
			case "config", "log-level", "log-format", "drain-timeout":
			default:
				quickOnly = append(quickOnly, "--"+fl.Name)
			}
		})
		if len(quickOnly) > 0 {
			return nil, fmt.Errorf("%s: quick-mode flags; with --config, set these in the file", strings.Join(quickOnly, ", "))
		}
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	switch {
	case f.config != "" && (f.upstream != "" || f.fanout != ""):
		return nil, errors.New("--config and quick mode (--upstream, --fanout) are exclusive")
	case f.config != "":
	case f.upstream == "" && f.fanout == "":
		return nil, errors.New("--config, --upstream or --fanout is required")
	case f.upstream != "" && f.fanout != "":
		return nil, errors.New("--upstream and --fanout are exclusive")
	case f.fanout == "" && (f.policy != "all" || f.failFast):
		return nil, errors.New("--fanout-policy and --fanout-fail-fast need --fanout")
	}
	if _, err := fanout.ParsePolicy(f.policy); err != nil {
		return nil, fmt.Errorf("--fanout-policy: %w", err)
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format: %q is not text or json", f.logFormat)
	}
	return f, nil
}

// newLogger writes level-filtered text or JSON records to w.
func newLogger(w io.Writer, level slog.Level, format string) *slog.Logger {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// run runs the proxy until ctx ends and returns the exit code. ready, if
// not nil, receives the listening address once the proxy serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- net.Addr) int {
	if len(args) > 0 && args[0] == "validate" {
		return validate(args[1:], stderr)
	}
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "manifold:", err)
		return 2
	}
	f.logOut = stderr
	log := newLogger(stderr, f.logLevel, f.logFormat)

	tel, err := setupTelemetry(ctx, log)
	if err != nil {
		log.Error("telemetry setup failed", slog.String("error", err.Error()))
		return 1
	}
	defer func() {
		// Flush what the exporters still hold.
		flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.close(flushCtx); err != nil {
			log.Warn("telemetry flush failed", slog.String("error", err.Error()))
		}
	}()
	serveFn := serve
	if f.config != "" {
		serveFn = serveConfig
	}
	if err := serveFn(ctx, f, log, tel, ready); err != nil {
		log.Error("manifold stopped", slog.String("error", err.Error()))
		return 1
	}
	return 0
}

// terminal builds the quick-mode terminal and the clusters it uses.
func terminal(f *flags, dialOpts []grpc.DialOption) (pipeline.Handler, []io.Closer, error) {
	if f.upstream != "" {
		var opts []route.Option
		if f.protoset != "" {
			ps, err := methodkind.LoadProtoset(f.protoset)
			if err != nil {
				return nil, nil, fmt.Errorf("--protoset: %w", err)
			}
			opts = append(opts, route.WithKinds(ps))
		}
		up, err := cluster.New(cluster.Config{Name: "upstream", Target: f.upstream, ConnectTimeout: f.connectTimeout, MaxMessageSize: f.maxMessageSize, DialOptions: dialOpts})
		if err != nil {
			return nil, nil, err
		}
		return route.New(up, opts...), []io.Closer{up}, nil
	}
	var closers []io.Closer
	closeAll := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	var members []fanout.Member
	for _, spec := range strings.Split(f.fanout, ",") {
		name, target, ok := strings.Cut(strings.TrimSpace(spec), "=")
		if !ok || name == "" || target == "" {
			closeAll()
			return nil, nil, fmt.Errorf("--fanout: %q is not name=target", spec)
		}
		cl, err := cluster.New(cluster.Config{Name: name, Target: target, ConnectTimeout: f.connectTimeout, MaxMessageSize: f.maxMessageSize, DialOptions: dialOpts})
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--fanout: %w", err)
		}
		closers = append(closers, cl)
		members = append(members, fanout.Member{Name: name, Conn: cl.Conn()})
	}
	cfg := fanout.Config{FailFast: f.failFast}
	cfg.Policy, _ = fanout.ParsePolicy(f.policy) // checked by parseFlags
	if f.protoset != "" {
		ps, err := methodkind.LoadProtoset(f.protoset)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("--protoset: %w", err)
		}
		conns := make([]grpc.ClientConnInterface, len(members))
		for i, m := range members {
			conns[i] = m.Conn
		}
		cfg.Kinds = methodkind.Chain(ps, methodkind.NewReflection(conns))
	}
	t, err := fanout.New(members, cfg)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return t, closers, nil
}

func serve(ctx context.Context, f *flags, log *slog.Logger, tel *telemetry, ready chan<- net.Addr) error {
	if f.admin != "" {
		tel.serveMetrics()
	}
	term, closers, err := terminal(f, tel.dialOptions())
	if err != nil {
		return err
	}
	closeAll := func() {
		for _, c := range closers {
			_ = c.Close()
		}
	}
	chain, err := pipeline.Build(nil, term, pipeline.WithLogger(log))
	if err != nil {
		closeAll()
		return err
	}
	srv, err := server.New(chain, append(tel.serverOptions(),
		server.WithLogger(log),
		server.WithMaxMessageSize(f.maxMessageSize, f.maxMessageSize),
		server.WithForwardedFor(f.forwardedFor),
		server.WithMaxConcurrentStreams(uint32(min(f.maxStreams, math.MaxUint32))),
		server.WithMaxHeaderListSize(uint32(min(f.maxHeaderList, math.MaxUint32))),
		server.WithCloser(closers...),
	)...)
	if err != nil {
		closeAll()
		return err
	}
	// From here the server owns the closers: shutting it down (it has
	// stream workers even before it serves) closes them.
	abandon := func(err error) error {
		_ = srv.Shutdown(context.Background())
		return err
	}
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		return abandon(err)
	}
	adm := newReadiness()
	adm.SetMetrics(tel.metrics)
	if f.admin != "" {
		stop, err := startAdmin(f.admin, adm, log)
		if err != nil {
			lis.Close()
			return abandon(fmt.Errorf("--admin: %w", err))
		}
		defer stop()
	}
	adm.listening.Store(true)
	attrs := []any{slog.String("listen", lis.Addr().String())}
	if f.upstream != "" {
		attrs = append(attrs, slog.String("upstream", f.upstream))
	} else {
		attrs = append(attrs, slog.String("fanout", f.fanout), slog.String("policy", f.policy))
	}
	log.Info("manifold serving", attrs...)
	if ready != nil {
		ready <- lis.Addr()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()

	// Quick mode has no file to reload; SIGHUP (which would otherwise end
	// the process without a drain) is logged and ignored.
	return serveUntilStopped(ctx, log, adm, []*server.Server{srv}, serveErr, f.drainTimeout, func() {
		log.Info("SIGHUP ignored: quick mode has no config file to reload")
	})
}
