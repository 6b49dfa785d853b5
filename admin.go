package manifold

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/manifold-grpc/manifold/admin"
)

// startAdmin serves h on addr until the returned stop is called.
func startAdmin(addr string, h http.Handler, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", adminBindAddress(addr))
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("admin listener failed", slog.String("error", err.Error()))
		}
	}()
	log.Info("admin serving", slog.String("listen", lis.Addr().String()))
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	}, nil
}

// adminBindAddress is where the admin listener binds for addr. A port
// without a host (":9901") binds the loopback interface only: the admin
// endpoints show the configuration and reload it, so serving them on every
// interface must be asked for by name ("0.0.0.0:9901", or a pod IP).
func adminBindAddress(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host != "" {
		return addr // net.Listen reports a malformed address itself
	}
	return net.JoinHostPort("127.0.0.1", port)
}

// readiness is the admin handler's view of the process: listening,
// draining, and the clusters' and filters' own checks.
type readiness struct {
	*admin.Handler
	listening, draining atomic.Bool
}

func newReadiness() *readiness {
	r := &readiness{Handler: admin.New()}
	r.SetCheck("listeners", func() error {
		if !r.listening.Load() {
			return errors.New("not listening yet")
		}
		return nil
	})
	r.SetCheck("draining", func() error {
		if r.draining.Load() {
			return errors.New("draining: no new calls, please")
		}
		return nil
	})
	return r
}
