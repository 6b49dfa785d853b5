package concurrency

import (
	"container/list"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Filter limits the calls in flight through it. Build it with [New] or
// [Config.Build]; it is safe for concurrent use.
type Filter struct {
	max        int
	maxPending int
	timeout    time.Duration
	slot       *pipeline.Key[*slot] // the slot a call holds

	mu       sync.Mutex
	inFlight int
	queue    list.List // of *waiter, first come first
}

// slot is the call's hold on one of the filter's slots.
type slot struct {
	released atomic.Bool
}

// waiter is a call waiting for a slot. granted, set under the filter's
// mutex, means a finished call handed its slot over; ready is then closed.
type waiter struct {
	ready   chan struct{}
	granted bool
}

// New validates cfg and builds the filter.
func New(cfg Config) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	timeout := cfg.QueueTimeout
	if timeout == 0 {
		timeout = DefaultQueueTimeout
	}
	return &Filter{
		max:        cfg.MaxConcurrent,
		maxPending: cfg.MaxPending,
		timeout:    timeout,
		slot:       pipeline.NewKey[*slot](Name + ".slot"),
	}, nil
}

// Name returns "concurrency_limit".
func (f *Filter) Name() string { return Name }

// OnRequestHeaders takes a slot for the call, waiting in the queue if
// max_pending allows, or refuses the call.
func (f *Filter) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	if err := f.acquire(ctx); err != nil {
		return err
	}
	f.slot.Set(call, new(slot))
	return nil
}

// OnResponseEnd gives the call's slot back: to the first waiting call, or
// to the pool.
func (f *Filter) OnResponseEnd(_ context.Context, call *pipeline.Call, _ *pipeline.End) {
	s, ok := f.slot.Get(call)
	if !ok {
		return
	}
	f.slot.Delete(call)
	if s.released.CompareAndSwap(false, true) {
		f.release()
	}
}

// InFlight returns the number of calls holding a slot.
func (f *Filter) InFlight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.inFlight
}

// Pending returns the number of calls waiting for a slot.
func (f *Filter) Pending() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queue.Len()
}

// acquire takes a slot, or returns the status that refuses the call.
func (f *Filter) acquire(ctx context.Context) error {
	f.mu.Lock()
	// Waiting calls come first: a free slot with a queue cannot happen
	// (release hands slots to waiters), but keep the order explicit.
	if f.inFlight < f.max && f.queue.Len() == 0 {
		f.inFlight++
		f.mu.Unlock()
		return nil
	}
	if f.queue.Len() >= f.maxPending {
		pending := f.queue.Len()
		f.mu.Unlock()
		if f.maxPending == 0 {
			return status.Errorf(codes.ResourceExhausted, "%s: %d calls in flight", Name, f.max)
		}
		return status.Errorf(codes.ResourceExhausted, "%s: %d calls in flight and %d waiting", Name, f.max, pending)
	}
	w := &waiter{ready: make(chan struct{})}
	e := f.queue.PushBack(w)
	f.mu.Unlock()

	t := time.NewTimer(f.timeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return nil
	case <-t.C:
		err = status.Errorf(codes.ResourceExhausted, "%s: no slot free after waiting %v", Name, f.timeout)
	case <-ctx.Done():
		err = status.Errorf(status.FromContextError(ctx.Err()).Code(), "%s: %v while waiting for a slot", Name, ctx.Err())
	}

	f.mu.Lock()
	if !w.granted {
		f.queue.Remove(e)
		f.mu.Unlock()
		return err
	}
	f.mu.Unlock()
	// A slot came as the wait ended: keep it, unless the call is over.
	if ctx.Err() != nil {
		f.release()
		return err
	}
	return nil
}

// release gives a slot back: to the first waiting call, or to the pool.
func (f *Filter) release() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.queue.Front(); e != nil {
		w := f.queue.Remove(e).(*waiter)
		w.granted = true
		close(w.ready)
		return
	}
	f.inFlight--
}

var (
	_ pipeline.RequestHeadersHook = (*Filter)(nil)
	_ pipeline.ResponseEndHook    = (*Filter)(nil)
)
