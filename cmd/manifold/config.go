package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"github.com/manifold-grpc/manifold/config"
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
	if _, err := config.Load(*file); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stderr, "%s: ok\n", *file)
	return 0
}

// serveConfig runs the proxy a config file describes until ctx ends.
func serveConfig(ctx context.Context, f *flags, log *slog.Logger, ready chan<- net.Addr) error {
	cfg, err := config.Load(f.config)
	if err != nil {
		return err
	}
	p, err := config.Build(cfg, log)
	if err != nil {
		return err
	}
	defer p.Close()
	adm := newReadiness()
	adm.SetConfig(cfg.Source)
	for _, cl := range p.Clusters {
		cl.WatchReady()
		adm.SetCheck("cluster "+cl.Name(), cl.Ready)
	}
	for name, check := range p.Checks {
		adm.SetCheck(name, check)
	}
	if cfg.Admin.Address != "" {
		stop, err := startAdmin(cfg.Admin.Address, adm, log)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		defer stop()
	}
	var lis []net.Listener
	for _, l := range p.Listeners {
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			for _, o := range lis {
				o.Close()
			}
			return err
		}
		lis = append(lis, ln)
	}
	serveErr := make(chan error, len(lis))
	for i, srv := range p.Servers {
		go func() { serveErr <- srv.Serve(lis[i]) }()
		log.Info("manifold serving", slog.String("listen", lis[i].Addr().String()), slog.String("config", f.config))
		if ready != nil {
			ready <- lis[i].Addr()
		}
	}
	adm.listening.Store(true)
	drain := cfg.DrainTimeout
	if drain == 0 {
		drain = f.drainTimeout
	}
	var first error
	select {
	case first = <-serveErr:
	case <-ctx.Done():
		log.Info("manifold draining", slog.Duration("drain_timeout", drain))
	}
	adm.draining.Store(true)
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	errs := []error{first}
	for _, srv := range p.Servers {
		errs = append(errs, srv.Shutdown(shutdownCtx))
	}
	err = errors.Join(errs...)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain timeout passed; calls still in flight were cancelled")
		err = errors.Join(first)
	}
	log.Info("manifold stopped")
	return err
}
