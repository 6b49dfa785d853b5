package tracing

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// OverflowKey marks the manifold.upstream.calls series that counts the
// calls of every series past the bound (1999 series per meter provider),
// as the OTel SDK marks its own overflow past its cardinality limit.
const OverflowKey attribute.Key = "otel.metric.overflow"

// meters holds the filter's two metrics for every tracing filter on one
// meter provider: counts kept with atomic adds, which the provider's
// readers read through one callback when they collect.
//
// A call used to cost three synchronous measurements (in flight +1 and
// -1, the upstream call +1), most of the filter's cost; an atomic add is a
// fraction of one, and a reader reads each count once per collection, not
// once per call.
//
// The counts belong to the meter provider, not to a filter, because a
// callback must not report a series another callback reports too (OTel's
// metrics API asks that of asynchronous instruments), and because a
// cumulative count must not restart when a filter is replaced. Two live
// filters on one provider are common: the old and new filter during a
// config reload, or filters in the global chain and in a route's chain.
// They share one meters and so one callback: a call counted in by the old
// filter and out after the reload still comes to zero, no series is
// reported twice, and upstream call counts carry on across reloads, even
// one that removes the filter and a later one that brings it back.
//
// A provider's meters live as long as the process, as a provider keeps
// its synchronous instruments' series until it shuts down. A filter has
// nothing to close, and the counts stay readable until the provider's
// last collection, which a program makes when it shuts the provider down,
// after the proxy has stopped.
type meters struct {
	active   metric.Int64ObservableUpDownCounter
	upstream metric.Int64ObservableCounter

	// routes holds each route's calls in flight ("" for the calls
	// without a route, reported with no attributes). A route is added on
	// its first call, as a synchronous counter's series would be, and
	// kept. Routes come from the config (router.Router sets
	// pipeline.Call.Route from its route names), so they are few, and the
	// cache has no bound.
	routes *attrCache[string, *count]
	// series holds the count of each manifold.upstream.calls series, up
	// to the bound; past it, calls are counted in overflow.
	series   *attrCache[upstreamKey, *count]
	overflow *count
}

// count is one series' value and attributes.
type count struct {
	n   atomic.Int64
	opt []metric.ObserveOption
}

func newCount(attrs attribute.Set) *count {
	c := &count{}
	if attrs.Len() > 0 {
		c.opt = []metric.ObserveOption{metric.WithAttributeSet(attrs)}
	}
	return c
}

// shared is the meters of each meter provider some filter uses.
var shared = struct {
	mu sync.Mutex
	m  map[metric.MeterProvider]*meters
}{m: map[metric.MeterProvider]*meters{}}

// metersFor returns mp's meters, made and registered with mp on first use
// with room for seriesLimit upstream series.
//
// A provider whose type cannot be a map key (a struct with a slice, say)
// gets meters of its own per filter; two filters on it would report the
// same series twice, which the built-in providers never risk.
func metersFor(mp metric.MeterProvider, seriesLimit int) (*meters, error) {
	// ValueOf, not TypeOf: a struct type with an interface field is
	// comparable, and still panics as a map key when the value in the
	// interface is not.
	share := reflect.ValueOf(mp).Comparable()
	if share {
		shared.mu.Lock()
		defer shared.mu.Unlock()
		if m, ok := shared.m[mp]; ok {
			return m, nil
		}
	}
	m := &meters{overflow: newCount(attribute.NewSet(OverflowKey.Bool(true)))}
	m.routes = newAttrCache(math.MaxInt, newRouteCount, newRouteCount)
	m.series = newAttrCache(seriesLimit,
		func(k upstreamKey) *count { return newCount(seriesAttributes(k)) },
		func(upstreamKey) *count { return m.overflow })
	meter := mp.Meter(ScopeName)
	var err error
	if m.upstream, err = meter.Int64ObservableCounter(UpstreamCallsMetric,
		metric.WithDescription("Upstream calls made by the proxy, by route, cluster, fan-out member and status code."),
		metric.WithUnit("{call}")); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if m.active, err = meter.Int64ObservableUpDownCounter(ActiveCallsMetric,
		metric.WithDescription("Calls in flight through the proxy's tracing filter."),
		metric.WithUnit("{call}")); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if _, err = meter.RegisterCallback(m.observe, m.upstream, m.active); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	if share {
		shared.m[mp] = m
	}
	return m, nil
}

// route returns the count of route's calls in flight ("": of calls
// without a route).
func (m *meters) route(name string) *count { return m.routes.get(name) }

func newRouteCount(name string) *count {
	if name == "" {
		return newCount(attribute.NewSet())
	}
	return newCount(attribute.NewSet(RouteKey.String(name)))
}

// observe reports every count, each cache's in the order the series
// appeared (see attrCache.each).
func (m *meters) observe(_ context.Context, o metric.Observer) error {
	m.routes.each(func(c *count) {
		o.ObserveInt64(m.active, c.n.Load(), c.opt...)
	})
	m.series.each(func(c *count) {
		o.ObserveInt64(m.upstream, c.n.Load(), c.opt...)
	})
	if n := m.overflow.n.Load(); n > 0 {
		o.ObserveInt64(m.upstream, n, m.overflow.opt...)
	}
	return nil
}
