package tracing_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// With room for every series (the default bound), each
// manifold.upstream.calls series has exactly the attributes the filter
// documents. With a bound below the number of series, and with none, the
// first series seen keep theirs and the calls of the rest are counted in
// the overflow series; nothing is lost. Calls in flight are by route
// whatever the bound.
func TestCachedMetrics(t *testing.T) {
	t.Parallel()
	ok := func(cluster, member string) pipeline.UpstreamResult {
		return pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: cluster, Member: member}, Code: codes.OK}
	}
	failed := func(cluster, member string, c codes.Code) pipeline.UpstreamResult {
		return pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: cluster, Member: member}, Code: c}
	}
	// The same steady call many times, then calls that differ from it in
	// one attribute each.
	var calls []routedCall
	for range 100 {
		calls = append(calls, routedCall{"users", []pipeline.UpstreamResult{ok("users", "")}})
	}
	calls = append(calls,
		routedCall{"users", []pipeline.UpstreamResult{failed("users", "", codes.NotFound)}},
		routedCall{"users", []pipeline.UpstreamResult{failed("users", "", codes.NotFound)}},
		routedCall{"orders", []pipeline.UpstreamResult{ok("users", "")}},
		routedCall{"", []pipeline.UpstreamResult{ok("users", "")}},
		routedCall{"nodes", []pipeline.UpstreamResult{ok("nodes", "n0"), ok("nodes", "n1"), failed("nodes", "n2", codes.Unavailable)}},
		routedCall{"nodes", []pipeline.UpstreamResult{ok("nodes", "n0"), failed("nodes", "n1", codes.Canceled), ok("nodes", "n2")}},
		routedCall{"nodes", []pipeline.UpstreamResult{failed("nodes", "n0", codes.Code(42))}},
		routedCall{"", nil}, // ended before reaching an upstream
	)

	for _, tc := range []struct {
		name  string
		bound int
		opts  []tracing.Option
	}{
		{"default bound", 1999, nil},
		{"bound below the series", 2, []tracing.Option{tracing.WithCacheSize(2)}},
		{"no room", 0, []tracing.Option{tracing.WithCacheSize(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t)
			f := tel.filter(t, tc.opts...)
			for i, c := range calls {
				countCall(t, f, c.route, c.results...)
				if i == 49 { // cumulative: half-way, then on top of it
					checkUpstreamSeries(t, tel.collect(t), tc.bound, calls[:50])
				}
			}
			rm := tel.collect(t)
			checkUpstreamSeries(t, rm, tc.bound, calls)
			checkActiveSeries(t, findMetric(t, rm, tracing.ActiveCallsMetric), map[string]int64{"": 0, "users": 0, "orders": 0, "nodes": 0})
		})
	}
}

// routedCall is a call's route and upstream results.
type routedCall struct {
	route   string
	results []pipeline.UpstreamResult
}

// checkUpstreamSeries checks manifold.upstream.calls after calls, made one
// after another on a fresh meter provider with room for bound series:
// the first bound series seen each have their own data point, the calls
// of the others are in the overflow series.
func checkUpstreamSeries(t *testing.T, rm metricdata.ResourceMetrics, bound int, calls []routedCall) {
	t.Helper()
	want := map[attribute.Distinct]int64{}
	wantSets := map[attribute.Distinct]attribute.Set{}
	var overflow int64
	for _, c := range calls {
		for _, r := range c.results {
			s := upstreamSet(c.route, r)
			if _, own := want[s.Equivalent()]; !own && len(want) == bound {
				overflow++
				continue
			}
			want[s.Equivalent()]++
			wantSets[s.Equivalent()] = s
		}
	}
	sum := findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
		t.Errorf("%s is not a monotonic cumulative sum", tracing.UpstreamCallsMetric)
	}
	for d, n := range want {
		s := wantSets[d]
		if v, found := sumAt(sum, s); !found || v != n {
			t.Errorf("%s{%s} = %d (found %v), want %d", tracing.UpstreamCallsMetric, s.Encoded(attributeEncoder), v, found, n)
		}
	}
	points := len(want)
	if overflow > 0 {
		points++
		s := attribute.NewSet(tracing.OverflowKey.Bool(true))
		if v, found := sumAt(sum, s); !found || v != overflow {
			t.Errorf("%s{%s} = %d (found %v), want %d", tracing.UpstreamCallsMetric, s.Encoded(attributeEncoder), v, found, overflow)
		}
	}
	if len(sum.DataPoints) != points {
		t.Errorf("%s has %d series, want %d", tracing.UpstreamCallsMetric, len(sum.DataPoints), points)
	}
}

// Calls of one route share the filter's state for the route: ending one
// call in flight leaves the others in flight, and each is counted out
// once.
func TestCachedRouteStateIsShared(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	f := tel.filter(t)
	ctx := context.Background()
	end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
	a, b := &pipeline.Call{Route: "users"}, &pipeline.Call{Route: "users"}
	for _, c := range []*pipeline.Call{a, b} {
		if err := f.OnRequestHeaders(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 2})
	f.OnResponseEnd(ctx, a, end)
	f.OnResponseEnd(ctx, a, end) // a second end of the same call counts nothing
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 1})
	f.OnResponseEnd(ctx, b, end)
	checkActiveSeries(t, findMetric(t, tel.collect(t), tracing.ActiveCallsMetric), map[string]int64{"users": 0})
}

// The caches are bounded: members that come and go (service discovery)
// fill them up to the bound and no further, and every call past the bound
// is still counted, in the overflow series.
func TestCacheBound(t *testing.T) {
	t.Parallel()
	const bound, members, routes, rounds = 3, 20, 6, 4
	tel := newTelemetry(t)
	f := tel.filter(t, tracing.WithCacheSize(bound))
	var calls []routedCall
	for range rounds {
		for i := range members {
			c := routedCall{fmt.Sprintf("r%d", i%routes), []pipeline.UpstreamResult{{
				Upstream: pipeline.Upstream{Cluster: "nodes", Member: fmt.Sprintf("n%d", i)},
				Code:     codes.OK,
			}}}
			countCall(t, f, c.route, c.results...)
			calls = append(calls, c)
		}
	}
	if r, u := tracing.CacheLen(f); r != bound || u != bound {
		t.Errorf("caches hold %d routes and %d series, want %d of each", r, u, bound)
	}
	rm := tel.collect(t)
	checkUpstreamSeries(t, rm, bound, calls)
	active := map[string]int64{}
	for i := range routes {
		active[fmt.Sprintf("r%d", i)] = 0
	}
	checkActiveSeries(t, findMetric(t, rm, tracing.ActiveCallsMetric), active)
}

// Calls on every core at once, some of their series with room and some
// past the bound, add up exactly (run with -race): each series is counted
// either in its own data point or, whole, in the overflow.
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	const workers, callsEach, members, bound = 8, 300, 5, 4
	tel := newTelemetry(t)
	f := tel.filter(t, tracing.WithCacheSize(bound))
	result := func(i int) pipeline.UpstreamResult {
		c := codes.OK
		if i%3 == 0 {
			c = codes.Unavailable
		}
		return pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "nodes", Member: fmt.Sprintf("n%d", i%members)}, Code: c}
	}
	route := func(w int) string { return fmt.Sprintf("r%d", w%2) }

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range callsEach {
				countCall(t, f, route(w), result(i))
			}
		})
	}
	wg.Wait()

	want := map[attribute.Distinct]int64{}
	for w := range workers {
		for i := range callsEach {
			s := upstreamSet(route(w), result(i))
			want[s.Equivalent()]++
		}
	}
	rm := tel.collect(t)
	sum := findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	overflowSet := attribute.NewSet(tracing.OverflowKey.Bool(true))
	var own, overflow, inOverflow int64
	for _, dp := range sum.DataPoints {
		if dp.Attributes.Equals(&overflowSet) {
			overflow = dp.Value
			continue
		}
		n, ok := want[dp.Attributes.Equivalent()]
		if !ok || dp.Value != n {
			t.Errorf("%s{%s} = %d, want %d (a series counted %v)", tracing.UpstreamCallsMetric, dp.Attributes.Encoded(attributeEncoder), dp.Value, n, ok)
		}
		delete(want, dp.Attributes.Equivalent())
		own++
	}
	for _, n := range want {
		inOverflow += n
	}
	if own != bound || overflow != inOverflow {
		t.Errorf("%s has %d series of their own and %d calls in overflow, want %d and %d", tracing.UpstreamCallsMetric, own, overflow, bound, inOverflow)
	}
	checkActiveSeries(t, findMetric(t, rm, tracing.ActiveCallsMetric), map[string]int64{"r0": 0, "r1": 0})
}

// countCall runs f's hooks on a call of route, with results recorded in
// between, outside any span.
func countCall(t testing.TB, f *tracing.Filter, route string, results ...pipeline.UpstreamResult) {
	t.Helper()
	ctx := context.Background()
	call := &pipeline.Call{Method: "/pkg.Svc/Get", Route: route}
	if err := f.OnRequestHeaders(ctx, call); err != nil {
		t.Error(err)
		return
	}
	for _, r := range results {
		pipeline.RecordUpstream(call, r)
	}
	f.OnResponseEnd(ctx, call, &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}})
}

// upstreamSet is the attribute set the package documents for one upstream
// call on manifold.upstream.calls, written out independently of the
// filter: manifold.route when the call has a route, manifold.cluster,
// manifold.member for fan-out, rpc.response.status_code.
func upstreamSet(route string, r pipeline.UpstreamResult) attribute.Set {
	var kvs []attribute.KeyValue
	if route != "" {
		kvs = append(kvs, attribute.String("manifold.route", route))
	}
	kvs = append(kvs, attribute.String("manifold.cluster", r.Cluster))
	if r.Member != "" {
		kvs = append(kvs, attribute.String("manifold.member", r.Member))
	}
	code, ok := statusCodeNames[r.Code]
	if !ok {
		code = fmt.Sprintf("CODE(%d)", r.Code)
	}
	kvs = append(kvs, attribute.String("rpc.response.status_code", code))
	return attribute.NewSet(kvs...)
}

// statusCodeNames are the codes these tests use, as the semantic
// conventions spell them.
var statusCodeNames = map[codes.Code]string{
	codes.OK:          "OK",
	codes.Canceled:    "CANCELLED",
	codes.NotFound:    "NOT_FOUND",
	codes.Unavailable: "UNAVAILABLE",
}

// checkActiveSeries checks that the in-flight gauge has exactly one series
// per route of want (the empty attribute set for route ""), with want's
// values.
func checkActiveSeries(t *testing.T, m metricdata.Metrics, want map[string]int64) {
	t.Helper()
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok || sum.IsMonotonic {
		t.Fatalf("%s is %T, want a non-monotonic sum (an UpDownCounter)", m.Name, m.Data)
	}
	for route, n := range want {
		s := attribute.NewSet()
		if route != "" {
			s = attribute.NewSet(attribute.String("manifold.route", route))
		}
		if v, found := sumAt(sum, s); !found || v != n {
			t.Errorf("%s{%s} = %d (found %v), want %d", m.Name, s.Encoded(attributeEncoder), v, found, n)
		}
	}
	if len(sum.DataPoints) != len(want) {
		t.Errorf("%s has %d series, want %d", m.Name, len(sum.DataPoints), len(want))
	}
}
