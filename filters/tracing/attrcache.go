package tracing

import (
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc/codes"
)

// defaultCacheSize bounds the filter's route states and its meter
// provider's manifold.upstream.calls series: one below the OTel SDK's
// default cardinality limit (2000), which keeps one data point for its own
// overflow, so that the series and the filter's overflow series all keep
// their own data points under the SDK's default.
const defaultCacheSize = 1999

// attrCache keeps, per key, a value built once from it: a route's call
// state, or the count of one manifold.upstream.calls series with its
// attributes. Steady traffic repeats a few routes, clusters, members and
// codes. Without the cache, every call would sort, deduplicate and hash a
// fresh [attribute.Set]. With it, a call does one lock-free map lookup.
//
// The cache holds at most limit entries. Members come from service
// discovery and churn, so keys must not pile up forever. Past the limit,
// get returns past(k): for a route's state, one built per call (the cache
// only saves work); for a series' count, the overflow count (see
// [meters]). There is no eviction. It would need an LRU with bookkeeping
// on every hit, and hits are the path the cache exists to make cheap.
//
// An attrCache is safe for concurrent use.
type attrCache[K comparable, V any] struct {
	build, past func(K) V
	limit       int
	// m maps K to V. sync.Map suits a read-mostly map: a hit takes no
	// lock, even with calls arriving on every core.
	m sync.Map
	// full is set once the cache holds limit entries. Entries are never
	// removed, so a full cache stays full, and later misses need no lock.
	full atomic.Bool
	mu   sync.Mutex // held while adding an entry
	// order holds the entries in the order they were added, under mu;
	// it only grows, so a copy of its header can be read without mu.
	order []V
}

func newAttrCache[K comparable, V any](limit int, build, past func(K) V) *attrCache[K, V] {
	return &attrCache[K, V]{build: build, past: past, limit: limit}
}

// get returns k's value: the cached one, one built now and cached when
// there is room, or past(k). Values are shared between calls and must not
// be changed.
func (c *attrCache[K, V]) get(k K) V {
	if v, ok := c.m.Load(k); ok {
		return v.(V)
	}
	if c.full.Load() {
		return c.past(k)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m.Load(k); ok { // another call added it meanwhile
		return v.(V)
	}
	if len(c.order) >= c.limit {
		c.full.Store(true)
		return c.past(k)
	}
	v := c.build(k)
	c.m.Store(k, v)
	c.order = append(c.order, v)
	return v
}

// each calls fn with every cached value, in the order they were added.
// The order matters to a metrics reader: past its cardinality limit the
// OTel SDK keeps the series a callback reports first, so a stable order
// keeps the same series in their own data points from one collection to
// the next (a sync.Map's order is not stable).
func (c *attrCache[K, V]) each(fn func(V)) {
	c.mu.Lock()
	order := c.order
	c.mu.Unlock()
	for _, v := range order {
		fn(v)
	}
}

// len returns the number of cached entries.
func (c *attrCache[K, V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.order)
}

// upstreamKey is everything that decides the attributes of one
// manifold.upstream.calls measurement.
type upstreamKey struct {
	route, cluster, member string
	code                   codes.Code
}

// seriesAttributes returns the attributes of k's manifold.upstream.calls
// series: manifold.route (when the call has a route), manifold.cluster,
// manifold.member (for fan-out) and rpc.response.status_code.
func seriesAttributes(k upstreamKey) attribute.Set {
	kvs := make([]attribute.KeyValue, 0, 4)
	if k.route != "" {
		kvs = append(kvs, RouteKey.String(k.route))
	}
	kvs = append(kvs, ClusterKey.String(k.cluster))
	if k.member != "" {
		kvs = append(kvs, MemberKey.String(k.member))
	}
	kvs = append(kvs, StatusCodeKey.String(codeName(k.code)))
	return attribute.NewSet(kvs...)
}
