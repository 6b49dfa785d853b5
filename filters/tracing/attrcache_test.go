package tracing

import (
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
)

// A key is built once while the cache has room; after that it is a hit
// that returns the very same value. Once the cache is full, a new key gets
// past's value on every get and is never stored, and the keys cached
// before still hit.
func TestAttrCacheBuildsOnce(t *testing.T) {
	t.Parallel()
	builds := map[int]int{}
	build := func(k int) *int {
		builds[k]++
		return new(k)
	}
	c := newAttrCache(2, build, build)
	first := c.get(1)
	for range 3 {
		if got := c.get(1); got != first {
			t.Fatal("a cached key returned a new value")
		}
	}
	c.get(2)
	for range 3 {
		c.get(3) // past the bound
	}
	c.get(1)
	c.get(2)
	if want := map[int]int{1: 1, 2: 1, 3: 3}; !equalCounts(builds, want) {
		t.Errorf("builds per key %v, want %v", builds, want)
	}
	if n := c.len(); n != 2 {
		t.Errorf("cache holds %d keys, want 2", n)
	}
	if got := *c.get(3); got != 3 {
		t.Errorf("uncached key 3 built %d", got)
	}
}

func equalCounts(a, b map[int]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// A series' attributes are exactly the ones the filter documents.
func TestUpstreamOptions(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		key  upstreamKey
		want []attribute.KeyValue
	}{
		{upstreamKey{"users", "users", "", codes.OK}, []attribute.KeyValue{
			RouteKey.String("users"), ClusterKey.String("users"), StatusCodeKey.String("OK"),
		}},
		{upstreamKey{"", "users", "", codes.NotFound}, []attribute.KeyValue{
			ClusterKey.String("users"), StatusCodeKey.String("NOT_FOUND"),
		}},
		{upstreamKey{"nodes", "nodes", "n1", codes.Canceled}, []attribute.KeyValue{
			RouteKey.String("nodes"), ClusterKey.String("nodes"), MemberKey.String("n1"), StatusCodeKey.String("CANCELLED"),
		}},
		{upstreamKey{"", "", "", codes.Code(42)}, []attribute.KeyValue{
			ClusterKey.String(""), StatusCodeKey.String("CODE(42)"),
		}},
	} {
		opts := newCount(seriesAttributes(tc.key)).opt
		got := metric.NewObserveConfig(opts).Attributes()
		want := attribute.NewSet(tc.want...)
		if len(opts) != 1 || !got.Equals(&want) {
			t.Errorf("%+v: %d options with %s, want one with %s", tc.key, len(opts), got.Encoded(attribute.DefaultEncoder()), want.Encoded(attribute.DefaultEncoder()))
		}
	}
}

// A hit allocates nothing: the per-call path of both hooks' caches.
func TestAttrCacheHitDoesNotAllocate(t *testing.T) {
	f, err := New()
	if err != nil {
		t.Fatal(err)
	}
	key := upstreamKey{"nodes", "nodes", "n1", codes.Unavailable}
	f.meters.series.get(key)
	f.routed.get("nodes")
	if n := testing.AllocsPerRun(100, func() {
		_ = f.meters.series.get(key)
		_ = f.routed.get("nodes")
	}); n != 0 {
		t.Errorf("a cache hit allocates %v times, want 0", n)
	}
}
