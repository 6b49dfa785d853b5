package ratelimit_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
	"github.com/manifold-grpc/manifold/pipeline"
)

// clock is a fake clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// newFilter builds a filter on clk, failing the test on error.
func newFilter(t *testing.T, cfg ratelimit.Config, clk *clock) *ratelimit.Filter {
	t.Helper()
	f, err := ratelimit.New(cfg, ratelimit.WithClock(clk.now))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// call is a fake call as the server would describe it.
type call struct {
	peer   net.Addr
	md     metadata.MD
	claims pipeline.Claims
	// edit changes the outbound header, as an earlier filter would.
	edit func(metadata.MD)
}

func (c call) build() *pipeline.Call {
	md := c.md
	if md == nil {
		md = metadata.MD{}
	}
	pc := &pipeline.Call{Method: "/test.Svc/M", Peer: c.peer, Inbound: md, Header: pipeline.OutboundHeader(md)}
	if c.claims != nil {
		pipeline.ClaimsKey.Set(pc, c.claims)
	}
	if c.edit != nil {
		c.edit(pc.Header)
	}
	return pc
}

// code runs the filter's hook on c and returns the status code.
func code(f *ratelimit.Filter, c call) codes.Code {
	return status.Code(f.OnRequestHeaders(context.Background(), c.build()))
}
