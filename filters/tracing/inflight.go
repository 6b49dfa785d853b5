package tracing

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// inFlight counts the calls in flight of every tracing filter on one meter
// provider, and reports them as manifold.server.active_calls when the
// provider's readers collect.
//
// A call used to be counted in and out with two UpDownCounter.Add calls,
// a third of the filter's cost. An atomic add is a fraction of that, and a
// reader reads the count once per collection, not twice per call.
//
// The counts belong to the meter provider, not to a filter, because a
// callback must not report a series another callback reports too (OTel's
// metrics API asks that of asynchronous instruments). Two live filters on
// one provider are common: the old and new filter during a config reload,
// or filters in the global chain and in a route's chain. They share one
// inFlight and so one callback: a call counted in by the old filter and
// out after the reload still comes to zero, and no route is reported
// twice.
type inFlight struct {
	instrument metric.Int64ObservableUpDownCounter
	reg        metric.Registration
	// provider is the map key of a shared inFlight, nil for one of its
	// own; refs is how many filters use it. Both under inFlights.mu.
	provider metric.MeterProvider
	refs     int

	// routes maps a route's name to its *activeCount ("" for the calls
	// without a route, reported with no attributes). A route is added on
	// its first call, as a synchronous counter's series would be, and
	// kept: a cumulative series stays once seen. Routes come from the
	// config, so they are few.
	routes sync.Map
}

// activeCount is the number of calls in flight of one route.
type activeCount struct {
	n   atomic.Int64
	opt []metric.ObserveOption
}

// inFlights is the inFlight of each meter provider some filter uses.
var inFlights = struct {
	mu sync.Mutex
	m  map[metric.MeterProvider]*inFlight
}{m: map[metric.MeterProvider]*inFlight{}}

// acquireInFlight returns mp's inFlight, made and registered with mp on
// first use. Each acquire needs a release.
//
// A provider whose type cannot be a map key (a struct with a slice, say)
// gets an inFlight of its own per filter; filters on it would report the
// same series twice, which the built-in providers never risk.
func acquireInFlight(mp metric.MeterProvider) (*inFlight, error) {
	shared := reflect.TypeOf(mp).Comparable()
	if shared {
		inFlights.mu.Lock()
		defer inFlights.mu.Unlock()
		if c, ok := inFlights.m[mp]; ok {
			c.refs++
			return c, nil
		}
	}
	c := &inFlight{refs: 1}
	meter := mp.Meter(ScopeName)
	var err error
	c.instrument, err = meter.Int64ObservableUpDownCounter(ActiveCallsMetric,
		metric.WithDescription("Calls in flight through the proxy's tracing filter."),
		metric.WithUnit("{call}"))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	c.reg, err = meter.RegisterCallback(c.observe, c.instrument)
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if shared {
		c.provider = mp
		inFlights.m[mp] = c
	}
	return c, nil
}

// release gives up one use of c; the last one unregisters its callback.
func (c *inFlight) release() error {
	inFlights.mu.Lock()
	c.refs--
	last := c.refs == 0
	if last && c.provider != nil {
		delete(inFlights.m, c.provider)
	}
	inFlights.mu.Unlock()
	if !last {
		return nil
	}
	return c.reg.Unregister()
}

// route returns the count of route's calls ("": of calls without a
// route).
func (c *inFlight) route(name string) *activeCount {
	if v, ok := c.routes.Load(name); ok {
		return v.(*activeCount)
	}
	a := &activeCount{}
	if name != "" {
		a.opt = []metric.ObserveOption{metric.WithAttributeSet(attribute.NewSet(RouteKey.String(name)))}
	}
	v, _ := c.routes.LoadOrStore(name, a)
	return v.(*activeCount)
}

// observe reports every route's count.
func (c *inFlight) observe(_ context.Context, o metric.Observer) error {
	c.routes.Range(func(_, v any) bool {
		a := v.(*activeCount)
		o.ObserveInt64(c.instrument, a.n.Load(), a.opt...)
		return true
	})
	return nil
}
