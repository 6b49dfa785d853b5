package methodkind

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestReflectionSweepsExpiredNegatives(t *testing.T) {
	t.Parallel()
	const ttl = 10 * time.Millisecond
	r := NewReflection(nil, WithNegativeTTL(ttl))
	ctx := context.Background()
	for i := range sweepMin {
		if k, err := r.Kind(ctx, fmt.Sprintf("/svc%d.S/M", i)); k != Unknown || err != nil {
			t.Fatalf("Kind = %v, %v", k, err)
		}
	}
	time.Sleep(2 * ttl)
	if _, err := r.Kind(ctx, "/last.S/M"); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	n, sweepAt := len(r.services), r.sweepAt
	r.mu.Unlock()
	if n != 1 || sweepAt != sweepMin {
		t.Errorf("after the sweep: %d services cached, next sweep at %d; want 1 and %d", n, sweepAt, sweepMin)
	}
}

func TestReflectionOptions(t *testing.T) {
	t.Parallel()
	r := NewReflection(nil, WithNegativeTTL(0), WithTimeout(-1))
	if r.opts.negativeTTL != DefaultNegativeTTL || r.opts.timeout != DefaultReflectionTimeout {
		t.Errorf("options %+v, want the defaults", r.opts)
	}
	r = NewReflection(nil, WithNegativeTTL(time.Second), WithTimeout(2*time.Second))
	if r.opts.negativeTTL != time.Second || r.opts.timeout != 2*time.Second {
		t.Errorf("options %+v", r.opts)
	}
}
