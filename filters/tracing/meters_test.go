package tracing_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Two filters on one meter provider, as during a config reload (the old
// filter and its replacement): their calls in flight add up in one series
// per route, a call of the old filter is counted out when it ends after
// the reload, and both filters' upstream calls add up in one series each.
// No collection observes a series twice, as OTel's API asks of callbacks.
func TestMetricsSharedByFilters(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	spy := &observationSpy{t: t}
	mp := spyProvider{MeterProvider: tel.mp, spy: spy}
	ctx := context.Background()
	end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
	ok := pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK}
	old := tel.filter(t, tracing.WithMeterProvider(mp))
	a, b, c := &pipeline.Call{Route: "users"}, &pipeline.Call{Route: "users"}, &pipeline.Call{}
	if err := old.OnRequestHeaders(ctx, a); err != nil {
		t.Fatal(err)
	}
	countCall(t, old, "users", ok)
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1})

	reloaded := tel.filter(t, tracing.WithMeterProvider(mp))
	for _, call := range []*pipeline.Call{b, c} {
		if err := reloaded.OnRequestHeaders(ctx, call); err != nil {
			t.Fatal(err)
		}
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 2, "": 1})

	pipeline.RecordUpstream(a, ok)
	old.OnResponseEnd(ctx, a, end)
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1, "": 1})
	pipeline.RecordUpstream(b, ok)
	reloaded.OnResponseEnd(ctx, b, end)
	reloaded.OnResponseEnd(ctx, c, end)
	rm := tel.collect(t)
	checkActiveSeries(t, findMetric(t, rm, tracing.ActiveCallsMetric), map[string]int64{"users": 0, "": 0})
	checkUpstreamSeries(t, rm, 4096, []routedCall{{"users", []pipeline.UpstreamResult{ok, ok, ok}}})
	if n := spy.registrations.Load(); n != 1 {
		t.Errorf("the two filters registered %d callbacks with their meter provider, want 1", n)
	}
}

// spyProvider hands out meters that count callback registrations and
// whose callbacks report a series observed twice in one run.
type spyProvider struct {
	metric.MeterProvider
	spy *observationSpy
}

func (p spyProvider) Meter(name string, opts ...metric.MeterOption) metric.Meter {
	return spyMeter{Meter: p.MeterProvider.Meter(name, opts...), spy: p.spy}
}

type spyMeter struct {
	metric.Meter
	spy *observationSpy
}

func (m spyMeter) RegisterCallback(f metric.Callback, insts ...metric.Observable) (metric.Registration, error) {
	m.spy.registrations.Add(1)
	return m.Meter.RegisterCallback(func(ctx context.Context, o metric.Observer) error {
		return f(ctx, &spyObserver{Observer: o, t: m.spy.t, seen: map[string]bool{}})
	}, insts...)
}

type observationSpy struct {
	t             *testing.T
	registrations atomic.Int64
}

type spyObserver struct {
	metric.Observer
	t    *testing.T
	seen map[string]bool
}

func (o *spyObserver) ObserveInt64(inst metric.Int64Observable, v int64, opts ...metric.ObserveOption) {
	attrs := metric.NewObserveConfig(opts).Attributes()
	key := fmt.Sprintf("%p %s", inst, attrs.Encoded(attributeEncoder))
	if o.seen[key] {
		o.t.Errorf("series %s observed twice in one callback run", key)
	}
	o.seen[key] = true
	o.Observer.ObserveInt64(inst, v, opts...)
}
