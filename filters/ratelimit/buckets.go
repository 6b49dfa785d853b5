package ratelimit

import (
	"container/list"
	"crypto/sha256"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxKeyLen is the longest key stored as it is; longer keys are stored as
// their SHA-256 digest, so that a client cannot make each bucket large.
const maxKeyLen = 64

// sweepPerCall is how many least recently used buckets each call checks
// for idleness.
const sweepPerCall = 2

// buckets holds one token bucket per key, at most max of them, in least
// recently used order. It is safe for concurrent use.
type buckets struct {
	limit rate.Limit
	burst int
	max   int

	mu  sync.Mutex
	m   map[string]*list.Element // of *bucket
	lru list.List                // front: most recently used
}

// bucket is one key's limiter.
type bucket struct {
	key string
	lim *rate.Limiter
}

func newBuckets(limit rate.Limit, burst, max int) *buckets {
	return &buckets{limit: limit, burst: burst, max: max, m: make(map[string]*list.Element)}
}

// allow takes a token from key's bucket at now. When there is none, it
// returns false and the time until there will be one.
func (b *buckets) allow(key string, now time.Time) (bool, time.Duration) {
	if len(key) > maxKeyLen {
		sum := sha256.Sum256([]byte(key))
		key = string(sum[:])
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	if ok {
		b.lru.MoveToFront(e)
	} else {
		for len(b.m) >= b.max {
			b.remove(b.lru.Back())
		}
		e = b.lru.PushFront(&bucket{key: key, lim: rate.NewLimiter(b.limit, b.burst)})
		b.m[key] = e
	}
	lim := e.Value.(*bucket).lim
	ok, wait := take(lim, now)
	b.sweep(now, e)
	return ok, wait
}

// sweep drops up to sweepPerCall idle buckets from the least recently used
// end, stopping at the first that is not idle or at keep. A bucket is idle
// when it is full: a new bucket would behave the same.
func (b *buckets) sweep(now time.Time, keep *list.Element) {
	for range sweepPerCall {
		e := b.lru.Back()
		if e == nil || e == keep || e.Value.(*bucket).lim.TokensAt(now) < float64(b.burst) {
			return
		}
		b.remove(e)
	}
}

func (b *buckets) remove(e *list.Element) {
	delete(b.m, e.Value.(*bucket).key)
	b.lru.Remove(e)
}

// len returns the number of buckets held.
func (b *buckets) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// take takes a token from lim at now. When there is none, it returns false
// and the time until there will be one.
func take(lim *rate.Limiter, now time.Time) (bool, time.Duration) {
	if lim.AllowN(now, 1) {
		return true, 0
	}
	missing := 1 - lim.TokensAt(now)
	wait := time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
	if wait <= 0 {
		// Refilled between the two reads: a token is there now.
		wait = time.Nanosecond
	}
	return false, wait
}
