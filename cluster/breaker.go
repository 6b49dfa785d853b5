package cluster

import (
	"context"
	"fmt"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ScopeName is the OpenTelemetry instrumentation scope of the cluster
// metrics.
const ScopeName = "github.com/manifold-grpc/manifold/cluster"

// OverflowMetric counts calls refused by a cluster's circuit breakers, with
// the attributes [ClusterKey] and [LimitKey].
const OverflowMetric = "manifold.cluster.overflow"

const (
	// ClusterKey is the cluster's name on the overflow counter; the same
	// key the tracing filter uses for the cluster.
	ClusterKey attribute.Key = "manifold.cluster"
	// LimitKey is the limit a refused call hit on the overflow counter:
	// "max_requests" or "max_pending".
	LimitKey attribute.Key = "manifold.cluster.limit"
)

// CircuitBreakers limit the calls one cluster carries at a time, like
// Envoy's cluster circuit breakers: a call past a limit fails at once with
// UNAVAILABLE ("cluster users: circuit breaker open: 100 calls in flight
// (max_requests)") instead of queueing, and is counted in the
// [OverflowMetric] counter.
//
// Both limits are off (0, unlimited) by default. Unlike Envoy, which
// defaults both to 1024, Manifold leaves them off: many gRPC calls through a
// proxy are long-lived streams (watches, subscriptions), and a fixed
// default would turn growth past it into an outage without anyone having
// chosen that number. Set them from the upstream's measured capacity.
//
// A call counts from the moment the proxy opens its upstream stream until
// grpc-go finishes that stream: the upstream's status was received, the
// call was cancelled or timed out, sending failed, or the cluster was
// closed. Retry attempts of one call count once.
type CircuitBreakers struct {
	// MaxRequests is the most calls in flight to the cluster at once,
	// including those still waiting for a connection. 0: unlimited.
	MaxRequests int `yaml:"max_requests"`
	// MaxPending is the most calls at once that have been started but
	// whose upstream stream is not yet established: they wait for a
	// connection to become ready or for the balancer to pick one. 0:
	// unlimited. It applies to streams, which are all the proxy opens;
	// unary calls made directly on [Cluster.Conn] count only toward
	// MaxRequests, as grpc-go does not show when their stream is
	// established.
	MaxPending int `yaml:"max_pending"`
}

func (b CircuitBreakers) validate() error {
	switch {
	case b.MaxRequests < 0:
		return fmt.Errorf("circuit_breakers.max_requests: must not be negative")
	case b.MaxPending < 0:
		return fmt.Errorf("circuit_breakers.max_pending: must not be negative")
	}
	return nil
}

// enabled reports whether any limit is set.
func (b CircuitBreakers) enabled() bool { return b.MaxRequests > 0 || b.MaxPending > 0 }

// breaker enforces one cluster's CircuitBreakers with grpc client
// interceptors.
type breaker struct {
	cluster     string
	maxRequests int64
	maxPending  int64

	requests atomic.Int64 // calls in flight, pending ones included
	pending  atomic.Int64 // calls inside NewStream

	overflow                    metric.Int64Counter
	requestsAttrs, pendingAttrs metric.AddOption
}

func newBreaker(cluster string, cfg CircuitBreakers, mp metric.MeterProvider) (*breaker, error) {
	counter, err := mp.Meter(ScopeName).Int64Counter(OverflowMetric,
		metric.WithDescription("Calls refused by a cluster's circuit breakers, by cluster and limit."),
		metric.WithUnit("{call}"))
	if err != nil {
		return nil, err
	}
	return &breaker{
		cluster:       cluster,
		maxRequests:   int64(cfg.MaxRequests),
		maxPending:    int64(cfg.MaxPending),
		overflow:      counter,
		requestsAttrs: metric.WithAttributeSet(attribute.NewSet(ClusterKey.String(cluster), LimitKey.String("max_requests"))),
		pendingAttrs:  metric.WithAttributeSet(attribute.NewSet(ClusterKey.String(cluster), LimitKey.String("max_pending"))),
	}, nil
}

// acquire takes one unit of c unless that would pass limit (0: no limit).
// It never lets c exceed limit, even for a moment, so a call is refused
// only when the limit really is reached.
func acquire(c *atomic.Int64, limit int64) bool {
	for {
		n := c.Load()
		if limit > 0 && n >= limit {
			return false
		}
		if c.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// slot is one admitted call's hold on the requests count. release gives it
// back exactly once, however many of grpc-go's finish callback and the
// interceptor's own error path call it.
type slot struct {
	b    *breaker
	done atomic.Bool
}

func (s *slot) release(error) {
	if s.done.CompareAndSwap(false, true) {
		s.b.requests.Add(-1)
	}
}

// admit takes a requests slot, or reports the overflow.
func (b *breaker) admit(ctx context.Context) (*slot, error) {
	if !acquire(&b.requests, b.maxRequests) {
		b.overflow.Add(ctx, 1, b.requestsAttrs)
		return nil, status.Errorf(codes.Unavailable, "cluster %s: circuit breaker open: %s in flight (max_requests)", b.cluster, calls(b.maxRequests))
	}
	return &slot{b: b}, nil
}

// calls returns "1 call" or "n calls".
func calls(n int64) string {
	if n == 1 {
		return "1 call"
	}
	return fmt.Sprintf("%d calls", n)
}

// withFinish returns opts plus a grpc.OnFinish option that releases s. It
// never writes into opts' backing array, which callers may share.
func withFinish(opts []grpc.CallOption, s *slot) []grpc.CallOption {
	return append(opts[:len(opts):len(opts)], grpc.OnFinish(s.release))
}

// stream is the stream client interceptor. The call holds a requests slot
// until grpc-go finishes the stream, which it reports once through the
// OnFinish call option: when RecvMsg returns an error, when the context
// ends, when Header or SendMsg fail, or when the ClientConn closes (grpc's
// documented ways a stream's resources are released). It holds a pending
// slot while the streamer (the pick and the stream's creation) runs.
func (b *breaker) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	s, err := b.admit(ctx)
	if err != nil {
		return nil, err
	}
	if !acquire(&b.pending, b.maxPending) {
		s.release(nil)
		b.overflow.Add(ctx, 1, b.pendingAttrs)
		return nil, status.Errorf(codes.Unavailable, "cluster %s: circuit breaker open: %s waiting for a connection (max_pending)", b.cluster, calls(b.maxPending))
	}
	established := false
	defer func() {
		b.pending.Add(-1)
		if !established {
			// grpc-go has usually called OnFinish already; release is
			// idempotent, and also covers an interceptor further down the
			// chain that failed or panicked before grpc-go saw the call.
			s.release(nil)
		}
	}()
	cs, err := streamer(ctx, desc, cc, method, withFinish(opts, s)...)
	if err != nil {
		return nil, err
	}
	established = true
	return cs, nil
}

// unary is the unary client interceptor: the call holds a requests slot
// until the invoker returns.
func (b *breaker) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	s, err := b.admit(ctx)
	if err != nil {
		return err
	}
	defer s.release(nil)
	return invoker(ctx, method, req, reply, cc, opts...)
}

// InFlight returns the calls the cluster's circuit breakers count now:
// calls in flight, and of those the calls still waiting for their upstream
// stream. Both are 0 when [Config.CircuitBreakers] sets no limit: then
// nothing is counted, and calls cost nothing extra.
func (c *Cluster) InFlight() (calls, pending int) {
	if c.breaker == nil {
		return 0, 0
	}
	return int(c.breaker.requests.Load()), int(c.breaker.pending.Load())
}
