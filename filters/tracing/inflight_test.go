package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Two filters on one meter provider, as during a config reload: their
// calls in flight add up in one series per route, a call of the old
// filter stays counted after the old filter is closed and is counted out
// when it ends, and the gauge goes when the last filter is closed.
func TestActiveCallsSharedByFilters(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	ctx := context.Background()
	end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
	old, err := tracing.New(tel.options()...)
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := &pipeline.Call{Route: "users"}, &pipeline.Call{Route: "users"}, &pipeline.Call{}
	if err := old.OnRequestHeaders(ctx, a); err != nil {
		t.Fatal(err)
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1})

	reloaded, err := tracing.New(tel.options()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []*pipeline.Call{b, c} {
		if err := reloaded.OnRequestHeaders(ctx, call); err != nil {
			t.Fatal(err)
		}
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 2, "": 1})

	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil { // a second Close is a no-op
		t.Fatal(err)
	}
	// The old filter's call is still in flight, and still counted.
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 2, "": 1})
	old.OnResponseEnd(ctx, a, end)
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1, "": 1})
	reloaded.OnResponseEnd(ctx, b, end)
	reloaded.OnResponseEnd(ctx, c, end)
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 0, "": 0})

	if err := reloaded.Close(); err != nil {
		t.Fatal(err)
	}
	if m, ok := lookupMetric(tel.collect(t), tracing.ActiveCallsMetric); ok {
		t.Errorf("%s still reported after every filter closed: %v", tracing.ActiveCallsMetric, m.Data)
	}

	// A filter made after that starts a new gauge.
	again := tel.filter(t)
	if err := again.OnRequestHeaders(ctx, &pipeline.Call{Route: "orders"}); err != nil {
		t.Fatal(err)
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"orders": 1})
}

// uncomparableProvider is a meter provider that cannot be a map key.
type uncomparableProvider struct {
	metric.MeterProvider
	_ []int
}

// A meter provider of a type that cannot be a map key still gets its
// gauge (per filter, unshared), without a panic.
func TestActiveCallsUncomparableProvider(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	f, err := tracing.New(tracing.WithMeterProvider(uncomparableProvider{MeterProvider: tel.mp}))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.OnRequestHeaders(context.Background(), &pipeline.Call{Route: "users"}); err != nil {
		t.Fatal(err)
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := lookupMetric(tel.collect(t), tracing.ActiveCallsMetric); ok {
		t.Errorf("%s still reported after its filter closed", tracing.ActiveCallsMetric)
	}
}

// lookupMetric returns the metric named name, if rm has it.
func lookupMetric(rm metricdata.ResourceMetrics, name string) (metricdata.Metrics, bool) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m, true
			}
		}
	}
	return metricdata.Metrics{}, false
}
