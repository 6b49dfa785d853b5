package tracing

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"google.golang.org/grpc/codes"
)

// defaultCacheSize bounds each of the filter's attribute caches. A
// cumulative sum already keeps every series it has seen, so the cache holds
// at most as many entries as the metric has series, and often fewer.
const defaultCacheSize = 4096

// attrCache keeps, per key, a value built once from it: the measurement
// options of an attribute set. Steady traffic repeats a few routes,
// clusters, members and codes. Without the cache, every call sorts,
// deduplicates and hashes a fresh [attribute.Set]. With it, a call does one
// lock-free map lookup, and the SDK records the cached Set as it is: with
// [metric.WithAttributeSet], the SDK (v1.47) uses the Set it is given and
// only checks its values for map attributes, which these sets never have.
//
// The cache holds at most limit entries. Members come from service
// discovery and churn, so keys must not pile up forever. When the cache is
// full, get builds the value for each new key on every call, as the filter
// did before it had a cache. The metric is the same either way, because
// the cache only saves work. There is no eviction. It would need an LRU
// with bookkeeping on every hit, and hits are the path the cache exists to
// make cheap. A full cache costs only the speed-up for keys that come
// later. Memory stays bounded because the cap is small (a few hundred bytes
// per entry). A proxy whose members change many times over pays the old
// cost for the newest ones, no more.
//
// An attrCache is safe for concurrent use.
type attrCache[K comparable, V any] struct {
	build func(K) V
	limit int
	// m maps K to V. sync.Map suits a read-mostly map: a hit takes no
	// lock, even with calls arriving on every core.
	m sync.Map
	// full is set once the cache holds limit entries. Entries are never
	// removed, so a full cache stays full, and later misses need no lock.
	full atomic.Bool
	mu   sync.Mutex // held while adding an entry, so that n is exact
	n    int        // entries in m, under mu
}

func newAttrCache[K comparable, V any](limit int, build func(K) V) *attrCache[K, V] {
	return &attrCache[K, V]{build: build, limit: limit}
}

// get returns k's value: the cached one, or one built now and cached when
// there is room. Values are shared between calls and must not be changed.
func (c *attrCache[K, V]) get(k K) V {
	if v, ok := c.m.Load(k); ok {
		return v.(V)
	}
	v := c.build(k)
	if c.full.Load() {
		return v
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m.Load(k); ok { // another call added it meanwhile
		return old.(V)
	}
	if c.n >= c.limit {
		c.full.Store(true)
		return v
	}
	c.m.Store(k, v)
	c.n++
	return v
}

// len returns the number of cached entries.
func (c *attrCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// upstreamKey is everything that decides the attributes of one
// manifold.upstream.calls measurement.
type upstreamKey struct {
	route, cluster, member string
	code                   codes.Code
}

// upstreamOptions returns the measurement options for k's
// manifold.upstream.calls count: manifold.route (when the call has a route),
// manifold.cluster, manifold.member (for fan-out) and
// rpc.response.status_code.
//
// The options are a ready-made variadic argument. Passing a cached
// one-element slice to Add spares the slice that a call like
// Add(ctx, 1, opt) would allocate. The SDK and otel's global delegate
// only read the slice.
func upstreamOptions(k upstreamKey) []metric.AddOption {
	kvs := make([]attribute.KeyValue, 0, 4)
	if k.route != "" {
		kvs = append(kvs, RouteKey.String(k.route))
	}
	kvs = append(kvs, ClusterKey.String(k.cluster))
	if k.member != "" {
		kvs = append(kvs, MemberKey.String(k.member))
	}
	kvs = append(kvs, StatusCodeKey.String(codeName(k.code)))
	return []metric.AddOption{metric.WithAttributeSet(attribute.NewSet(kvs...))}
}
