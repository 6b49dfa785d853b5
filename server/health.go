package server

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// watchGrace is how long a health watcher gets, once draining starts, to
// receive NOT_SERVING before its stream is ended.
const watchGrace = 100 * time.Millisecond

// drainingHealth is grpc-go's health service, except that Watch streams end
// when the server starts draining. grpc-go's Watch never returns on its own,
// so a client that watches the proxy's health would otherwise hold every
// graceful stop until its timeout.
type drainingHealth struct {
	*health.Server
	once     sync.Once
	draining chan struct{}
}

func newDrainingHealth() *drainingHealth {
	return &drainingHealth{Server: health.NewServer(), draining: make(chan struct{})}
}

// Shutdown reports NOT_SERVING for every service and ends Watch streams
// shortly after.
func (h *drainingHealth) Shutdown() {
	h.Server.Shutdown()
	h.once.Do(func() { close(h.draining) })
}

// Watch serves grpc-go's Watch until the client leaves or draining starts.
func (h *drainingHealth) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.draining:
			// Let the NOT_SERVING update reach the watcher first.
			t := time.NewTimer(watchGrace)
			defer t.Stop()
			select {
			case <-t.C:
			case <-ctx.Done():
			}
			cancel()
		case <-ctx.Done():
		}
	}()
	err := h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
	select {
	case <-h.draining:
		if stream.Context().Err() == nil {
			return status.Error(codes.Unavailable, "manifold: server is shutting down")
		}
	default:
	}
	return err
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }

var _ healthpb.HealthServer = (*drainingHealth)(nil)
