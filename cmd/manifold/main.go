package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stderr, nil))
}

// flags are the quick-mode settings.
type flags struct {
	listen         string
	upstream       string
	connectTimeout time.Duration
	drainTimeout   time.Duration
	maxMessageSize int
	forwardedFor   bool
	logLevel       slog.Level
	logFormat      string
}

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{}
	fs := flag.NewFlagSet("manifold", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.listen, "listen", "127.0.0.1:8080", "`address` to serve gRPC on")
	fs.StringVar(&f.upstream, "upstream", "", "`target` to proxy every call to: host:port or a grpc target URI (dns:///, unix:, passthrough:///)")
	fs.DurationVar(&f.connectTimeout, "connect-timeout", cluster.DefaultConnectTimeout, "bound on one connection attempt to the upstream")
	fs.DurationVar(&f.drainTimeout, "drain-timeout", 30*time.Second, "on SIGTERM/SIGINT, how long calls in flight may take to finish before they are cancelled")
	fs.IntVar(&f.maxMessageSize, "max-message-size", server.DefaultMaxMessageSize, "largest message, in `bytes`, accepted and sent each way")
	fs.BoolVar(&f.forwardedFor, "x-forwarded-for", true, "append the client's address to the x-forwarded-for request header")
	fs.TextVar(&f.logLevel, "log-level", slog.LevelInfo, "log `level`: debug, info, warn, error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: manifold --listen ADDR --upstream TARGET [flags]\n\n"+
			"Manifold proxies every gRPC call it receives on ADDR to TARGET, unchanged.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if f.upstream == "" {
		return nil, errors.New("--upstream is required")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format: %q is not text or json", f.logFormat)
	}
	return f, nil
}

// run runs the proxy until ctx ends and returns the exit code. ready, if
// not nil, receives the listening address once the proxy serves.
func run(ctx context.Context, args []string, stderr io.Writer, ready chan<- net.Addr) int {
	f, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "manifold:", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: f.logLevel}
	var handler slog.Handler = slog.NewTextHandler(stderr, opts)
	if f.logFormat == "json" {
		handler = slog.NewJSONHandler(stderr, opts)
	}
	log := slog.New(handler)

	if err := serve(ctx, f, log, ready); err != nil {
		log.Error("manifold stopped", slog.String("error", err.Error()))
		return 1
	}
	return 0
}

func serve(ctx context.Context, f *flags, log *slog.Logger, ready chan<- net.Addr) error {
	up, err := cluster.New(cluster.Config{Name: "upstream", Target: f.upstream, ConnectTimeout: f.connectTimeout})
	if err != nil {
		return err
	}
	chain, err := pipeline.Build(nil, route.New(up), pipeline.WithLogger(log))
	if err != nil {
		_ = up.Close()
		return err
	}
	srv, err := server.New(chain,
		server.WithLogger(log),
		server.WithMaxMessageSize(f.maxMessageSize, f.maxMessageSize),
		server.WithForwardedFor(f.forwardedFor),
		server.WithCloser(up),
	)
	if err != nil {
		_ = up.Close()
		return err
	}
	lis, err := net.Listen("tcp", f.listen)
	if err != nil {
		_ = up.Close()
		return err
	}
	log.Info("manifold serving", slog.String("listen", lis.Addr().String()), slog.String("upstream", f.upstream))
	if ready != nil {
		ready <- lis.Addr()
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(lis) }()

	select {
	case err := <-serveErr:
		shutdownCtx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
		defer cancel()
		return errors.Join(err, srv.Shutdown(shutdownCtx))
	case <-ctx.Done():
	}
	log.Info("manifold draining", slog.Duration("drain_timeout", f.drainTimeout))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), f.drainTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-serveErr; serr != nil {
		err = errors.Join(err, serr)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain timeout passed; calls still in flight were cancelled")
		err = nil
	}
	log.Info("manifold stopped")
	return err
}
