package ratelimit_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
)

func tenant(v string) call { return call{md: metadata.Pairs("x-tenant", v)} }

// TestRefill: a bucket admits burst calls at once, then one call per
// 1/rate, and says how long to wait when it refuses.
func TestRefill(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"one per second", 1, 1},
		{"burst of three", 2, 3},
		{"one per four seconds", 0.25, 2},
		{"fast", 1000, 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, key := range []string{"", "header:x-tenant"} {
				clk := newClock()
				f := newFilter(t, ratelimit.Config{Rate: tc.rate, Burst: tc.burst, Key: key}, clk)
				for i := range tc.burst {
					if got := code(f, tenant("a")); got != codes.OK {
						t.Fatalf("key %q: call %d of the burst: %v", key, i, got)
					}
				}
				interval := time.Duration(float64(time.Second) / tc.rate)
				err := f.OnRequestHeaders(context.Background(), tenant("a").build())
				if got := retryDelay(t, err); got != interval {
					t.Fatalf("key %q: retry delay %v, want %v", key, got, interval)
				}
				// Half an interval later, the wait is the other half.
				clk.advance(interval / 2)
				err = f.OnRequestHeaders(context.Background(), tenant("a").build())
				if got := retryDelay(t, err); got != interval-interval/2 {
					t.Fatalf("key %q: retry delay after half an interval %v, want %v", key, got, interval-interval/2)
				}
				clk.advance(interval - interval/2)
				if got := code(f, tenant("a")); got != codes.OK {
					t.Fatalf("key %q: after one interval: %v", key, got)
				}
				if got := code(f, tenant("a")); got != codes.ResourceExhausted {
					t.Fatalf("key %q: a second call in the same interval: %v", key, got)
				}
				// A long quiet period refills the bucket to burst, not more.
				clk.advance(100 * time.Duration(tc.burst) * interval)
				for i := range tc.burst {
					if got := code(f, tenant("a")); got != codes.OK {
						t.Fatalf("key %q: refilled burst call %d: %v", key, i, got)
					}
				}
				if got := code(f, tenant("a")); got != codes.ResourceExhausted {
					t.Fatalf("key %q: call past the refilled burst: %v", key, got)
				}
			}
		})
	}
}

// retryDelay checks a refusal and returns its RetryInfo delay.
func retryDelay(t *testing.T, err error) time.Duration {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != "rate_limit: rate limit exceeded" {
		t.Fatalf("got %v %q, want RESOURCE_EXHAUSTED \"rate_limit: rate limit exceeded\"", st.Code(), st.Message())
	}
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	t.Fatalf("no RetryInfo in %v", st.Details())
	return 0
}

// TestKeysBounded: many distinct keys never hold more than max_keys
// buckets, and idle (refilled) buckets are dropped as calls pass.
func TestKeysBounded(t *testing.T) {
	t.Parallel()
	clk := newClock()
	const maxKeys = 100
	f := newFilter(t, ratelimit.Config{Rate: 1, Burst: 2, Key: "header:x-tenant", MaxKeys: maxKeys}, clk)
	for i := range 10 * maxKeys {
		if got := code(f, tenant(strconv.Itoa(i))); got != codes.OK {
			t.Fatalf("new key %d: %v", i, got)
		}
		if n := f.Keys(); n > maxKeys {
			t.Fatalf("after %d keys the filter holds %d buckets, max_keys is %d", i+1, n, maxKeys)
		}
	}
	if n := f.Keys(); n != maxKeys {
		t.Fatalf("holds %d buckets, want %d (every bucket is in use)", n, maxKeys)
	}

	// Two seconds later every bucket is full again, so idle: one active
	// key's calls sweep them all away.
	clk.advance(2 * time.Second)
	for range maxKeys {
		code(f, tenant("active"))
		clk.advance(time.Second)
	}
	if n := f.Keys(); n != 1 {
		t.Fatalf("after the others went idle the filter holds %d buckets, want 1", n)
	}
}

// TestDefaultMaxKeys: without max_keys, the filter holds at most
// DefaultMaxKeys buckets.
func TestDefaultMaxKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("makes DefaultMaxKeys+1000 buckets")
	}
	t.Parallel()
	f := newFilter(t, ratelimit.Config{Rate: 1, Burst: 1, Key: "claim:sub"}, newClock())
	ctx := context.Background()
	for i := range ratelimit.DefaultMaxKeys + 1000 {
		c := call{claims: map[string]any{"sub": strconv.Itoa(i)}}.build()
		if err := f.OnRequestHeaders(ctx, c); err != nil {
			t.Fatalf("new key %d: %v", i, err)
		}
	}
	if n := f.Keys(); n != ratelimit.DefaultMaxKeys {
		t.Fatalf("holds %d buckets, want %d", n, ratelimit.DefaultMaxKeys)
	}
}

// TestEvictionLeastRecentlyUsed: when max_keys buckets are in use, the
// least recently used goes, and its key starts again with a full bucket.
func TestEvictionLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	f := newFilter(t, ratelimit.Config{Rate: 1, Burst: 1, Key: "header:x-tenant", MaxKeys: 2}, newClock())
	for i, step := range []struct {
		key  string
		want codes.Code
	}{
		{"a", codes.OK},
		{"b", codes.OK},
		{"a", codes.ResourceExhausted}, // a is now the most recently used
		{"c", codes.OK},                // evicts b, not a
		{"a", codes.ResourceExhausted}, // a kept its empty bucket
		{"b", codes.OK},                // b starts again full (and evicts c)
		{"b", codes.ResourceExhausted},
		{"c", codes.OK}, // c was evicted too
	} {
		if got := code(f, tenant(step.key)); got != step.want {
			t.Fatalf("step %d, key %s: %v, want %v", i, step.key, got, step.want)
		}
		if n := f.Keys(); n > 2 {
			t.Fatalf("step %d: %d buckets", i, n)
		}
	}
}

// TestConcurrentCalls: under concurrent calls at one instant, exactly
// burst calls pass, whatever the key kind.
func TestConcurrentCalls(t *testing.T) {
	t.Parallel()
	const burst, callers, each = 50, 8, 40
	for _, key := range []string{"none", "peer", "header:x-tenant"} {
		f := newFilter(t, ratelimit.Config{Rate: 1, Burst: burst, Key: key}, newClock())
		var ok atomic.Int64
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				for range each {
					if code(f, tenant("a")) == codes.OK {
						ok.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if got := ok.Load(); got != burst {
			t.Errorf("key %s: %d of %d calls passed, want the burst %d", key, got, callers*each, burst)
		}
	}
}
