package logging_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"
)

// capture is a slog.Handler that keeps every record, and also renders each
// with a JSON handler, so that tests can look at attributes and at the text
// that would reach a log.
type capture struct {
	level slog.Leveler

	mu      sync.Mutex
	records []entry
	out     bytes.Buffer
}

// entry is one captured record, its attributes flattened to dotted keys.
type entry struct {
	Level slog.Level
	Msg   string
	Attrs map[string]slog.Value
	keys  []string // in order
}

func newCapture(level slog.Leveler) *capture { return &capture{level: level} }

// logger returns a logger writing to c.
func (c *capture) logger() *slog.Logger { return slog.New(c) }

func (c *capture) Enabled(_ context.Context, l slog.Level) bool {
	if c.level == nil {
		return l >= slog.LevelInfo
	}
	return l >= c.level.Level()
}

func (c *capture) Handle(ctx context.Context, r slog.Record) error {
	e := entry{Level: r.Level, Msg: r.Message, Attrs: map[string]slog.Value{}}
	r.Attrs(func(a slog.Attr) bool {
		e.add("", a)
		return true
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.records = append(c.records, e)
	return slog.NewJSONHandler(&c.out, &slog.HandlerOptions{Level: slog.LevelDebug}).Handle(ctx, r)
}

func (e *entry) add(prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		for _, g := range v.Group() {
			e.add(prefix+a.Key+".", g)
		}
		return
	}
	e.Attrs[prefix+a.Key] = v
	e.keys = append(e.keys, prefix+a.Key)
}

func (c *capture) WithAttrs([]slog.Attr) slog.Handler { panic("capture: WithAttrs not supported") }
func (c *capture) WithGroup(string) slog.Handler      { panic("capture: WithGroup not supported") }

// wait returns the records once there are n, failing the test after a
// while. The record is written before the client gets the status, so the
// wait is only for calls the client abandoned.
func (c *capture) wait(t *testing.T, n int) []entry {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c.mu.Lock()
		got := append([]entry(nil), c.records...)
		c.mu.Unlock()
		if len(got) >= n || time.Now().After(deadline) {
			if len(got) != n {
				t.Fatalf("got %d records, want %d: %+v", len(got), n, got)
			}
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// text returns the JSON that the records rendered to.
func (c *capture) text() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// str returns attribute key as a string, failing when it is missing.
func (e entry) str(t *testing.T, key string) string {
	t.Helper()
	v, ok := e.Attrs[key]
	if !ok {
		t.Fatalf("record has no %s: %v", key, e.keys)
	}
	return v.String()
}

// int returns attribute key as an int64, failing when it is missing.
func (e entry) int(t *testing.T, key string) int64 {
	t.Helper()
	v, ok := e.Attrs[key]
	if !ok || v.Kind() != slog.KindInt64 {
		t.Fatalf("record has no int %s: %v", key, e.keys)
	}
	return v.Int64()
}

// float returns attribute key as a float64, failing when it is missing.
// millis returns a duration attribute: milliseconds as a decimal string.
func (e entry) millis(t *testing.T, key string) float64 {
	t.Helper()
	v, ok := e.Attrs[key]
	if !ok || v.Kind() != slog.KindString {
		t.Fatalf("record has no string %s: %v", key, e.keys)
	}
	f, err := strconv.ParseFloat(v.String(), 64)
	if err != nil {
		t.Fatalf("%s = %q is not a decimal number", key, v.String())
	}
	return f
}

// absent fails if the record has any of keys.
func (e entry) absent(t *testing.T, keys ...string) {
	t.Helper()
	for _, k := range keys {
		if v, ok := e.Attrs[k]; ok {
			t.Errorf("record has %s=%v, want none", k, v)
		}
	}
}
