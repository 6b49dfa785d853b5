package fault

import (
	"context"
	"math/rand/v2"
	"time"
)

// Option configures [New].
type Option func(*options)

type options struct {
	random func() float64
	wait   func(ctx context.Context, d time.Duration) error
}

func defaultOptions() options {
	return options{random: rand.Float64, wait: wait}
}

// WithRandom sets the source of the draws that decide whether a call is
// faulted: a number in [0, 1), and a fault applies when it is below
// percent/100. One draw is made per configured fault with a percent
// strictly between 0 and 100, delay first. The default is
// [math/rand/v2.Float64]. random must be safe for concurrent use.
func WithRandom(random func() float64) Option {
	return func(o *options) {
		if random != nil {
			o.random = random
		}
	}
}

// WithWait sets how a delay is waited out: wait must return nil after d,
// or an error (normally ctx.Err()) as soon as ctx is done. The default
// uses a timer. For tests.
func WithWait(wait func(ctx context.Context, d time.Duration) error) Option {
	return func(o *options) {
		if wait != nil {
			o.wait = wait
		}
	}
}

// wait waits for d or for ctx to be done.
func wait(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
