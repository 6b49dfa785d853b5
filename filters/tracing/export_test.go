package tracing

// WithCacheSize is withCacheSize, for the external tests.
var WithCacheSize = withCacheSize

// CacheLen returns how many entries f's attribute caches hold: the routes
// of calls in flight, and the manifold.upstream.calls series of f's meter
// provider.
func CacheLen(f *Filter) (routes, upstreams int) {
	return f.routed.len(), f.meters.series.len()
}
