package fault

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Filter injects delays and aborts. It only looks at request headers.
// Build it with [New] or [Config.Build]; it is safe for concurrent use.
type Filter struct {
	delay  *Delay // nil: no delay section
	abort  *Abort // nil: no abort section
	code   codes.Code
	header bool

	delayPercent, abortPercent float64
	random                     func() float64
	wait                       func(ctx context.Context, d time.Duration) error
}

// New validates cfg and builds the filter.
func New(cfg Config, opts ...Option) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	f := &Filter{
		delay:        cfg.Delay,
		abort:        cfg.Abort,
		header:       cfg.HeaderControl,
		delayPercent: 100,
		abortPercent: 100,
		random:       o.random,
		wait:         o.wait,
	}
	if d := cfg.Delay; d != nil && d.Percent != nil {
		f.delayPercent = *d.Percent
	}
	if a := cfg.Abort; a != nil {
		if a.Percent != nil {
			f.abortPercent = *a.Percent
		}
		if a.Code != "" {
			f.code, _ = parseCode(a.Code)
		}
	}
	return f, nil
}

// Name returns "fault".
func (f *Filter) Name() string { return Name }

// OnRequestHeaders removes the fault headers from the upstream request,
// decides the call's faults, waits out a delay and returns an abort's
// status.
func (f *Filter) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	delete(call.Header, DelayHeader)
	delete(call.Header, AbortHeader)

	d, err := f.delayFor(call)
	if err != nil {
		return err
	}
	code, err := f.abortFor(call)
	if err != nil {
		return err
	}
	if d > 0 {
		if err := f.wait(ctx, d); err != nil {
			return status.Errorf(status.FromContextError(err).Code(), "%s: %v during the injected delay", Name, err)
		}
	}
	if code != codes.OK {
		msg := DefaultAbortMessage
		if f.abort != nil && f.abort.Message != "" {
			msg = f.abort.Message
		}
		return status.Error(code, msg)
	}
	return nil
}

// delayFor returns the call's delay, 0 for none.
func (f *Filter) delayFor(call *pipeline.Call) (time.Duration, error) {
	if !f.header {
		if f.delay == nil || !f.hit(f.delayPercent) {
			return 0, nil
		}
		return f.delay.Duration, nil
	}
	v := call.Inbound[DelayHeader]
	if len(v) == 0 {
		return 0, nil
	}
	d, err := time.ParseDuration(v[0])
	if err != nil || d < 0 {
		return 0, status.Errorf(codes.InvalidArgument, "%s: %s: %q is not a duration like 250ms", Name, DelayHeader, v[0])
	}
	if !f.hit(f.delayPercent) {
		return 0, nil
	}
	return d, nil
}

// abortFor returns the code to abort the call with, OK for none.
func (f *Filter) abortFor(call *pipeline.Call) (codes.Code, error) {
	if !f.header {
		if f.abort == nil || !f.hit(f.abortPercent) {
			return codes.OK, nil
		}
		return f.code, nil
	}
	v := call.Inbound[AbortHeader]
	if len(v) == 0 {
		return codes.OK, nil
	}
	code, err := parseCode(v[0])
	if err != nil {
		return codes.OK, status.Errorf(codes.InvalidArgument, "%s: %s: %v", Name, AbortHeader, err)
	}
	if !f.hit(f.abortPercent) {
		return codes.OK, nil
	}
	return code, nil
}

// hit draws whether a fault with percent applies to a call.
func (f *Filter) hit(percent float64) bool {
	switch {
	case percent >= 100:
		return true
	case percent <= 0:
		return false
	}
	return f.random()*100 < percent
}

var _ pipeline.RequestHeadersHook = (*Filter)(nil)
