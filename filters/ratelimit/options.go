package ratelimit

import "time"

// Option configures [New].
type Option func(*options)

type options struct {
	now func() time.Time
}

func defaultOptions() options {
	return options{now: time.Now}
}

// WithClock sets the clock that buckets refill by. The default is
// [time.Now]. For tests: a fake clock makes refills exact. now must be safe
// for concurrent use.
func WithClock(now func() time.Time) Option {
	return func(o *options) {
		if now != nil {
			o.now = now
		}
	}
}
