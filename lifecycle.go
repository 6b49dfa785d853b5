package manifold

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/manifold-grpc/manifold/server"
)

// serveUntilStopped waits until ctx ends (SIGTERM, SIGINT) or a server
// fails, passing each SIGHUP to onHUP, then drains: readiness reports
// draining, the servers stop taking calls and get drain to finish the ones
// in flight, the rest are cancelled. It returns the serving error, if any.
func serveUntilStopped(ctx context.Context, log *slog.Logger, adm *readiness, servers []*server.Server, serveErr <-chan error, drain time.Duration, onHUP func()) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	var first error
wait:
	for {
		select {
		case first = <-serveErr:
			break wait
		case <-hup:
			onHUP()
		case <-ctx.Done():
			break wait
		}
	}
	adm.draining.Store(true)
	log.Info("manifold draining", slog.Duration("drain_timeout", drain))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), drain)
	defer cancel()
	errs := []error{first}
	for _, srv := range servers {
		errs = append(errs, srv.Shutdown(shutdownCtx))
	}
	err := errors.Join(errs...)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("drain timeout passed; calls still in flight were cancelled")
		err = first
	}
	log.Info("manifold stopped")
	return err
}
