package auth

// WithVerifyHook calls fn after each full verification of a token, that is
// on every call with a token except cache hits.
func WithVerifyHook(fn func()) Option {
	return func(o *options) { o.onVerify = fn }
}

// CacheLen returns the number of tokens f remembers.
func CacheLen(f *Filter) int {
	if f.cache == nil {
		return 0
	}
	return f.cache.len()
}
