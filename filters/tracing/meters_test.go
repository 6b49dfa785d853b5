package tracing_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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

// Past the SDK's cardinality limit (here 5 data points, one of them the
// overflow), the series the filter reports first keep their own data
// points from one collection to the next, so that every reader's counts
// add up: a delta reader's deltas sum to the calls made, and no series
// moves between its own data point and the overflow.
func TestUpstreamSeriesPastSDKLimit(t *testing.T) {
	t.Parallel()
	reader := sdkmetric.NewManualReader(sdkmetric.WithTemporalitySelector(func(sdkmetric.InstrumentKind) metricdata.Temporality {
		return metricdata.DeltaTemporality
	}))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader), sdkmetric.WithCardinalityLimit(5))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	f, err := tracing.New(tracing.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	overflow := attribute.NewSet(tracing.OverflowKey.Bool(true))
	own := map[attribute.Distinct]bool{}
	var calls, counted int64
	for round := range 3 {
		for i := range 30 {
			countCall(t, f, "nodes", pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "nodes", Member: fmt.Sprintf("n%d", i)}, Code: codes.OK})
			calls++
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			seen := map[attribute.Distinct]bool{}
			for _, dp := range findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64]).DataPoints {
				counted += dp.Value
				if !dp.Attributes.Equals(&overflow) {
					seen[dp.Attributes.Equivalent()] = true
				}
			}
			if round > 0 || i >= 4 { // the first four series have their own points from then on
				for d := range own {
					if !seen[d] {
						t.Fatalf("round %d, call %d: a series with its own data point before went into the overflow", round, i)
					}
				}
			}
			for d := range seen {
				own[d] = true
			}
		}
	}
	if counted != calls {
		t.Errorf("the delta reader counted %d upstream calls, want %d", counted, calls)
	}
	if len(own) != 4 {
		t.Errorf("%d series had their own data points, want 4 (the SDK's limit of 5 less its overflow)", len(own))
	}
}

// uncomparableProvider is a meter provider that cannot be a map key;
// wrappedProvider can, by its type, but not with an uncomparableProvider
// in it.
type (
	uncomparableProvider struct {
		metric.MeterProvider
		_ []int
	}
	wrappedProvider struct{ metric.MeterProvider }
)

// A meter provider that cannot be a map key, by its type or by what an
// interface in it holds, gets its metrics (kept per filter, unshared),
// without a panic.
func TestMetricsUncomparableProvider(t *testing.T) {
	t.Parallel()
	for name, wrap := range map[string]func(metric.MeterProvider) metric.MeterProvider{
		"uncomparable type": func(mp metric.MeterProvider) metric.MeterProvider { return uncomparableProvider{MeterProvider: mp} },
		"uncomparable value in an interface": func(mp metric.MeterProvider) metric.MeterProvider {
			return wrappedProvider{uncomparableProvider{MeterProvider: mp}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t)
			f, err := tracing.New(tracing.WithMeterProvider(wrap(tel.mp)))
			if err != nil {
				t.Fatal(err)
			}
			if err := f.OnRequestHeaders(context.Background(), &pipeline.Call{Route: "users"}); err != nil {
				t.Fatal(err)
			}
			ok := pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK}
			countCall(t, f, "users", ok)
			rm := tel.collect(t)
			checkActiveSeries(t, findMetric(t, rm, tracing.ActiveCallsMetric), map[string]int64{"users": 1})
			checkUpstreamSeries(t, rm, 1999, []routedCall{{"users", []pipeline.UpstreamResult{ok}}})
		})
	}
}
