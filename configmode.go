package manifold

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"reflect"
	"sync"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// validate is `manifold validate --config FILE`: it loads and checks the
// file without starting anything.
func validate(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("manifold validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("config", "", "the config `file` to check")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if *file == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: manifold validate --config FILE")
		return 2
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	// Build everything but the listeners too, so that what only building
	// finds (an unreadable key file, say) fails here, not at start. Nothing
	// connects: upstream connections are made lazily and closed at once.
	p, err := config.BuildRoutes(cfg, config.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", *file, err)
		return 1
	}
	_ = p.Close()
	fmt.Fprintf(stderr, "%s: ok\n", *file)
	return 0
}

// configRunner runs from a config file and reloads it on SIGHUP or
// POST /reload.
type configRunner struct {
	file    string
	opts    config.Options
	log     *slog.Logger
	adm     *readiness
	servers []*server.Server

	// running is the config the process started with: listeners, the
	// admin address and the drain timeout change only with a restart.
	running *config.Config
	// startTouches is what the running servers were built for.
	startTouches pipeline.Touch

	mu       sync.Mutex
	cfg      *config.Config
	proxy    *config.Proxy
	retiring sync.WaitGroup // old proxies waiting for their last call
}

// reload loads the file again; if it is valid, new calls use it at once and
// calls in flight finish on the old one, whose upstreams close after them.
func (r *configRunner) reload() (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	// A bug in building must never take the running proxy down: the old
	// config keeps serving.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("config reload failed: %v", p)
			r.log.Error("config reload panicked; keeping the running config", slog.Any("panic", p))
		}
	}()
	cfg, err := config.Load(r.file)
	if err != nil {
		r.log.Error("config reload failed; keeping the running config", slog.String("error", err.Error()))
		return err
	}
	p, err := config.BuildRoutes(cfg, r.opts)
	if err != nil {
		r.log.Error("config reload failed; keeping the running config", slog.String("error", err.Error()))
		return err
	}
	if !reflect.DeepEqual(cfg.Listeners, r.running.Listeners) || cfg.Admin != r.running.Admin || cfg.DrainTimeout != r.running.DrainTimeout {
		r.log.Warn("changes to listeners, admin and drain_timeout take effect only after a restart; the running ones stay")
	}
	if touches(p.Handler)&^r.startTouches&pipeline.TouchCounters != 0 {
		r.log.Warn("a filter of the new config reads message counters (access-log counts), which the running servers were started without; they are left out until a restart")
	}
	old := r.proxy
	drained := make([]<-chan struct{}, 0, len(r.servers))
	for _, srv := range r.servers {
		drained = append(drained, srv.Swap(p.Handler))
	}
	r.proxy, r.cfg = p, cfg
	r.watch(old, p)
	r.retiring.Add(1)
	go func() {
		defer r.retiring.Done()
		for _, d := range drained {
			<-d
		}
		_ = old.Close()
	}()
	r.log.Info("config reloaded", slog.String("config", r.file))
	return nil
}

// watch moves the readiness checks from the old proxy to the new one. A
// cluster that had connected under the old config counts as ready under
// the new one too (its fresh connection is still coming up), so a reload
// never takes a ready proxy out of its load balancer.
func (r *configRunner) watch(old, p *config.Proxy) {
	wasReady := map[string]bool{}
	if old != nil {
		for _, cl := range old.Required {
			wasReady[cl.Name()] = cl.Ready() == nil
			r.adm.SetCheck("cluster "+cl.Name(), nil)
		}
		for name := range old.Checks {
			r.adm.SetCheck(name, nil)
		}
	}
	for _, cl := range p.Required {
		cl.WatchReady()
		check := cl.Ready
		if wasReady[cl.Name()] {
			check = func() error { return nil }
		}
		r.adm.SetCheck("cluster "+cl.Name(), check)
	}
	for name, check := range p.Checks {
		r.adm.SetCheck(name, check)
	}
	r.adm.SetConfig(r.cfg.Source)
}

// serveConfig runs the proxy a config file describes until ctx ends.
func serveConfig(ctx context.Context, f *flags, log *slog.Logger, tel *telemetry, ready chan<- net.Addr) error {
	cfg, err := config.Load(f.config)
	if err != nil {
		return err
	}
	if cfg.Log != nil {
		level, format := f.logLevel, f.logFormat
		if cfg.Log.Level != "" {
			_ = level.UnmarshalText([]byte(cfg.Log.Level)) // checked by Load
		}
		if cfg.Log.Format != "" {
			format = cfg.Log.Format
		}
		log = newLogger(f.logOut, level, format)
	}
	if cfg.Admin.Address != "" {
		tel.serveMetrics()
	}
	opts := config.Options{Logger: log, DialOptions: tel.dialOptions(), ServerOptions: tel.serverOptions()}
	p, err := config.Build(cfg, opts)
	if err != nil {
		return err
	}
	r := &configRunner{file: f.config, opts: opts, log: log, adm: newReadiness(), servers: p.Servers, running: cfg, startTouches: touches(p.Handler), cfg: cfg, proxy: p}
	r.adm.SetMetrics(tel.metrics)
	r.watch(nil, p)
	r.adm.SetReload(r.reload)
	defer func() {
		r.retiring.Wait()
		r.mu.Lock()
		_ = r.proxy.Close()
		r.mu.Unlock()
	}()
	// Servers hold goroutines (stream workers, certificate reloaders) from
	// the moment they are built: stop them when serving never starts.
	serving := false
	defer func() {
		if !serving {
			for _, srv := range r.servers {
				_ = srv.Shutdown(context.Background())
			}
		}
	}()
	if cfg.Admin.Address != "" {
		stop, err := startAdmin(cfg.Admin.Address, r.adm, log)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		defer stop()
	}
	var lis []net.Listener
	for _, l := range cfg.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			for _, o := range lis {
				o.Close()
			}
			return err
		}
		lis = append(lis, ln)
	}
	serving = true
	serveErr := make(chan error, len(lis))
	for i, srv := range r.servers {
		go func() { serveErr <- srv.Serve(lis[i]) }()
		log.Info("manifold serving", slog.String("listen", lis[i].Addr().String()), slog.String("config", f.config))
		if ready != nil {
			ready <- lis[i].Addr()
		}
	}
	r.adm.listening.Store(true)

	drain := cfg.DrainTimeout
	if drain == 0 {
		drain = f.drainTimeout
	}
	return serveUntilStopped(ctx, log, r.adm, r.servers, serveErr, drain, func() { _ = r.reload() })
}

// touches reports what a handler touches, nothing when it does not say.
func touches(h pipeline.Handler) pipeline.Touch {
	if t, ok := h.(pipeline.Toucher); ok {
		return t.Touches()
	}
	return 0
}
