package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/manifold-grpc/manifold/bench/internal/procfs"
)

// idleResult is one measurement of the memory idle streams hold.
type idleResult struct {
	Target  string `json:"target"`
	Repeat  int    `json:"repeat"`
	Order   int    `json:"order"`
	Streams int    `json:"streams"`
	// RSSBeforeKiB is the fresh process's RSS after a few warm-up calls;
	// RSSAfterKiB with every stream open and idle.
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	PeakRSSKiB   int64   `json:"peak_rss_kib"`
	KiBPerStream float64 `json:"kib_per_stream"`
	OpenSeconds  float64 `json:"open_seconds"`
}

// idleSettle is how long memory settles before each reading.
const idleSettle = time.Second

// runIdle starts a fresh process of target (a proxy in front of the
// backend, or for direct a fresh backend of its own, as a reference: what
// grpc-go's server alone holds), opens s.IdleStreams ping-pong streams
// through it over one connection, each carrying one round trip so that
// every hop of it exists, and reports how much its RSS grew per stream.
func (b *bench) runIdle(ctx context.Context, name string) (idleResult, error) {
	res := idleResult{Target: name, Streams: b.s.IdleStreams}
	p, err := b.startProxy(name, true)
	if err != nil {
		return res, err
	}
	defer p.stop()

	conn, err := dial(p.addrs[0])
	if err != nil {
		return res, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()

	req, _ := encodedRequest(16, 16)
	var n int
	for range 100 {
		if err := conn.Invoke(ctx, methodUnary, &req, &n, codecOpt); err != nil {
			return res, fmt.Errorf("idle/%s: warm-up: %w", name, err)
		}
	}
	sleep(ctx, idleSettle)
	before, err := procfs.Mem(p.Pid)
	if err != nil {
		return res, err
	}
	res.RSSBeforeKiB = before.RSSKiB

	start := time.Now()
	streams := make([]grpc.ClientStream, b.s.IdleStreams)
	var next atomic.Int64
	var firstErr error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range b.s.InFlight {
		wg.Go(func() {
			var n int
			for {
				i := int(next.Add(1)) - 1
				if i >= len(streams) || ctx.Err() != nil {
					return
				}
				cs, err := conn.NewStream(ctx, pingPongDesc, methodStreaming, codecOpt)
				if err == nil {
					err = cs.SendMsg(&req)
				}
				if err == nil {
					err = cs.RecvMsg(&n)
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				streams[i] = cs
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return res, fmt.Errorf("idle/%s: opening streams: %w", name, firstErr)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	res.OpenSeconds = time.Since(start).Seconds()
	sleep(ctx, idleSettle)
	after, err := procfs.Mem(p.Pid)
	if err != nil {
		return res, err
	}
	res.RSSAfterKiB, res.PeakRSSKiB = after.RSSKiB, after.PeakKiB
	if err := p.Alive(); err != nil {
		return res, err
	}
	res.KiBPerStream = float64(res.RSSAfterKiB-res.RSSBeforeKiB) / float64(res.Streams)
	return res, nil
}
