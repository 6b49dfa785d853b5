package pipeline

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
)

// Chain is a built filter chain: filters compiled into per-hook lists around
// a terminal. It is immutable and safe for concurrent calls.
type Chain struct {
	root    Handler
	filters []Filter
	touches Touch
	// watchesEnd: a filter of this chain sees the client's half-close
	// (a request end hook) or may (an around filter wraps the stream).
	watchesEnd bool
}

// Option configures [Build].
type Option func(*options)

type options struct {
	logger *slog.Logger
}

// WithLogger sets the logger that reports panics in filters. The default is
// [slog.Default].
func WithLogger(l *slog.Logger) Option {
	return func(o *options) { o.logger = l }
}

// Build compiles filters, outermost first, around terminal. Consecutive
// hook filters are merged into one stage that wraps the stream once per
// call; each [AroundHook] filter becomes its own stage.
func Build(filters []Filter, terminal Handler, opts ...Option) (*Chain, error) {
	o := options{logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if terminal == nil {
		return nil, errors.New("pipeline: nil terminal")
	}
	c := &Chain{filters: append([]Filter(nil), filters...)}
	if t, ok := terminal.(Toucher); ok {
		c.touches = t.Touches()
	}

	// Split the filters into stages: runs of hook filters, and around
	// filters. A filter with both kinds of hooks runs its plain hooks just
	// outside its Around.
	type stage struct {
		filters []Filter
		hooks   []hooks
		around  bool
	}
	var stages []stage
	var cur stage
	for i, f := range filters {
		if isNil(f) {
			return nil, fmt.Errorf("pipeline: filter %d is nil", i)
		}
		if f.Name() == "" {
			return nil, fmt.Errorf("pipeline: filter %d (%T) has an empty name", i, f)
		}
		h := hooksOf(f)
		c.touches |= h.touches()
		c.watchesEnd = c.watchesEnd || h.touches()&(TouchRequestEnd|TouchAround) != 0
		if u, ok := f.(CountersUser); ok && u.UsesCounters() {
			c.touches |= TouchCounters
		}
		plain := h
		plain.around = nil
		if plain.any() {
			cur.filters = append(cur.filters, f)
			cur.hooks = append(cur.hooks, plain)
		}
		if h.around != nil {
			if len(cur.filters) > 0 {
				stages = append(stages, cur)
				cur = stage{}
			}
			stages = append(stages, stage{filters: []Filter{f}, hooks: []hooks{h}, around: true})
		}
	}
	if len(cur.filters) > 0 {
		stages = append(stages, cur)
	}

	next := terminal
	for i := len(stages) - 1; i >= 0; i-- {
		s := stages[i]
		if s.around {
			next = &aroundStage{name: s.filters[0].Name(), fn: s.hooks[0].around, next: next, log: o.logger}
			continue
		}
		next = newHookStage(s.filters, s.hooks, next, o.logger)
	}
	c.root = next
	return c, nil
}

// Serve runs the call through the chain. It implements [Handler], so a
// chain can be the terminal of another chain (a route chain behind the
// global chain).
func (c *Chain) Serve(call *Call, stream ServerStream) error {
	if c.watchesEnd {
		call.endWatched = true
	}
	return c.root.Serve(call, stream)
}

// Touches reports what the chain's filters and terminal touch.
func (c *Chain) Touches() Touch { return c.touches }

// Filters returns the chain's filters, outermost first.
func (c *Chain) Filters() []Filter { return append([]Filter(nil), c.filters...) }

// isNil reports a nil filter, including a typed nil pointer in a non-nil
// interface, whose methods would panic.
func isNil(f Filter) bool {
	if f == nil {
		return true
	}
	v := reflect.ValueOf(f)
	switch v.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Func, reflect.Interface, reflect.Chan:
		return v.IsNil()
	}
	return false
}

func (h hooks) any() bool {
	return h.touches() != 0
}

func (h hooks) touches() Touch {
	var t Touch
	if h.reqHeaders != nil {
		t |= TouchRequestHeaders
	}
	if h.reqMessage != nil {
		t |= TouchRequestMessages
	}
	if h.reqEnd != nil {
		t |= TouchRequestEnd
	}
	if h.respHeaders != nil {
		t |= TouchResponseHeaders
	}
	if h.respMessage != nil {
		t |= TouchResponseMessages
	}
	if h.respEnd != nil {
		t |= TouchResponseEnd
	}
	if h.around != nil {
		t |= TouchAround
	}
	return t
}

var (
	_ Handler = (*Chain)(nil)
	_ Toucher = (*Chain)(nil)
)
