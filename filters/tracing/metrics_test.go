package tracing_test

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// The filter's metrics and otelgrpc's, through one MeterProvider: calls in
// flight go up while a call runs and back to 0, upstream results are
// counted by route, cluster and code, and the server's call duration comes
// from otelgrpc alone.
func TestMetrics(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	entered := make(chan struct{})
	release := make(chan struct{})
	addr, _ := startEcho(t, tel, func(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		switch req.GetResponseSize() {
		case 1:
			entered <- struct{}{}
			<-release
		case 2:
			return nil, status.Error(codes.NotFound, "no such thing")
		}
		return &testgrpc.SimpleResponse{}, nil
	})
	env := startOneToOne(t, tel, addr, tel.filter(t), nil)
	route := tracing.RouteKey.String(oneToOne)

	// One call held in the backend: one call in flight.
	done := make(chan error, 1)
	go func() {
		_, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{ResponseSize: 1})
		done <- err
	}()
	<-entered
	active := findMetric(t, tel.collect(t), tracing.ActiveCallsMetric)
	checkActive(t, active, set(route), 1)
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{ResponseSize: 2}); status.Code(err) != codes.NotFound {
		t.Fatalf("call: %v, want NotFound", err)
	}
	tel.waitSpans(t, 9) // three calls of three spans: otelgrpc has recorded its durations

	rm := tel.collect(t)
	checkActive(t, findMetric(t, rm, tracing.ActiveCallsMetric), set(route), 0)

	calls := findMetric(t, rm, tracing.UpstreamCallsMetric)
	if calls.Unit != "{call}" {
		t.Errorf("%s unit %q, want {call}", calls.Name, calls.Unit)
	}
	sum := calls.Data.(metricdata.Sum[int64])
	if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("%s is not a monotonic cumulative sum", calls.Name)
	}
	for code, want := range map[string]int64{"OK": 2, "NOT_FOUND": 1} {
		attrs := set(route, tracing.ClusterKey.String("backend"), tracing.StatusCodeKey.String(code))
		if v, ok := sumAt(sum, attrs); !ok || v != want {
			t.Errorf("%s{%s} = %d (found %v), want %d", calls.Name, attrs.Encoded(attributeEncoder), v, ok, want)
		}
	}
	if len(sum.DataPoints) != 2 {
		t.Errorf("%s has %d data points, want 2", calls.Name, len(sum.DataPoints))
	}

	// Durations come from otelgrpc: the server's by method and code, the
	// upstream's labelled with the cluster.
	server := findMetric(t, rm, "rpc.server.call.duration")
	if server.Unit != "s" {
		t.Errorf("rpc.server.call.duration unit %q, want s", server.Unit)
	}
	var n uint64
	for _, dp := range server.Data.(metricdata.Histogram[float64]).DataPoints {
		if m, _ := dp.Attributes.Value("rpc.method"); m.AsString() != unaryName {
			t.Errorf("rpc.server.call.duration point for method %q", m.AsString())
		}
		if v, _ := dp.Attributes.Value("rpc.system.name"); v.AsString() != "grpc" {
			t.Errorf("rpc.server.call.duration point with rpc.system.name %q", v.AsString())
		}
		n += dp.Count
	}
	if n != 3 {
		t.Errorf("rpc.server.call.duration counted %d calls, want 3", n)
	}
	n = 0
	for _, dp := range findMetric(t, rm, "rpc.client.call.duration").Data.(metricdata.Histogram[float64]).DataPoints {
		if c, _ := dp.Attributes.Value(tracing.ClusterKey); c.AsString() != "backend" {
			t.Errorf("rpc.client.call.duration point with manifold.cluster %q", c.AsString())
		}
		if _, ok := dp.Attributes.Value(tracing.MemberKey); ok {
			t.Error("rpc.client.call.duration of a one-to-one call has manifold.member")
		}
		n += dp.Count
	}
	if n != 3 {
		t.Errorf("rpc.client.call.duration counted %d calls, want 3", n)
	}

	// Each instrument comes from one scope: none is recorded twice.
	scopes := map[string]instrumentation.Scope{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if prev, dup := scopes[m.Name]; dup {
				t.Errorf("%s recorded by %s and %s", m.Name, prev.Name, sm.Scope.Name)
			}
			scopes[m.Name] = sm.Scope
		}
	}
	if s := scopes[tracing.UpstreamCallsMetric]; s.Name != tracing.ScopeName {
		t.Errorf("%s from scope %q, want %q", tracing.UpstreamCallsMetric, s.Name, tracing.ScopeName)
	}
}

// checkActive checks the in-flight gauge's value for attrs.
func checkActive(t *testing.T, m metricdata.Metrics, attrs attribute.Set, want int64) {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || sum.IsMonotonic {
		t.Fatalf("%s is %T, want a non-monotonic sum (an UpDownCounter)", m.Name, m.Data)
	}
	if len(sum.DataPoints) != 1 || !sum.DataPoints[0].Attributes.Equals(&attrs) {
		t.Fatalf("%s points %v, want one with %s", m.Name, sum.DataPoints, attrs.Encoded(attributeEncoder))
	}
	if got := sum.DataPoints[0].Value; got != want {
		t.Errorf("%s = %d, want %d", m.Name, got, want)
	}
}

// Two tracing filters on one call (global chain and route chain), or one
// filter listed twice: the call is recorded once.
func TestNestedFiltersCountOnce(t *testing.T) {
	t.Parallel()
	for _, same := range []bool{false, true} {
		t.Run(map[bool]string{false: "two filters", true: "one filter twice"}[same], func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t)
			addr, _ := startEcho(t, tel, nil)
			outer, inner := tel.filter(t), tel.filter(t)
			if same {
				inner = outer
			}
			env := startOneToOne(t, tel, addr, outer, []pipeline.Filter{inner})
			if _, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{}); err != nil {
				t.Fatal(err)
			}
			tel.waitSpans(t, 3)
			rm := tel.collect(t)
			sum := findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
			if len(sum.DataPoints) != 1 || sum.DataPoints[0].Value != 1 {
				t.Errorf("%s points %v, want one upstream call counted once", tracing.UpstreamCallsMetric, sum.DataPoints)
			}
			checkActive(t, findMetric(t, rm, tracing.ActiveCallsMetric), set(tracing.RouteKey.String(oneToOne)), 0)
		})
	}
}
