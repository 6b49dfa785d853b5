package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/bench/internal/procfs"
)

// soak is one run: the pieces, the counters, the samples.
type soak struct {
	s     *settings
	start time.Time

	pair, trio []*backend
	backends   []*backend
	proxy      *proxy
	conns      *conns

	stats      *stats
	readyCalls int // calls made before the load, by waitReady
	mu         sync.Mutex
	samples    []sample
	faults     []faultEvent
	selfCPU0   float64
}

// sample is one reading of the proxy.
type sample struct {
	T          float64 `json:"t_s"`
	Goroutines int     `json:"goroutines"`      // go_goroutines
	MetricFDs  int     `json:"metric_fds"`      // process_open_fds
	MetricRSS  int64   `json:"metric_rss"`      // process_resident_memory_bytes
	FDs        int     `json:"fds"`             // entries of /proc/PID/fd
	RSSKiB     int64   `json:"rss_kib"`         // VmRSS
	CPU        float64 `json:"cpu_s"`           // user+system seconds so far
	Calls      int64   `json:"calls"`           // calls finished so far
	Failed     int64   `json:"failed"`          // calls finished not OK so far
	Lost       int64   `json:"lost"`            // messages lost so far
	Down       int     `json:"backends_down"`   // backends down now
	Error      string  `json:"error,omitempty"` // a failed reading
}

// faultEvent is a backend killed or restarted, or a connection churned.
type faultEvent struct {
	T    float64 `json:"t_s"`
	What string  `json:"what"`
	Whom string  `json:"whom"`
}

func (sk *soak) since() float64 { return time.Since(sk.start).Seconds() }

func (sk *soak) event(what, whom string) {
	sk.mu.Lock()
	sk.faults = append(sk.faults, faultEvent{T: sk.since(), What: what, Whom: whom})
	sk.mu.Unlock()
}

func names(bs []*backend) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.name)
	}
	return out
}

// run does the whole soak and returns the exit status.
func run(s *settings) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if s.Seed == 0 {
		s.Seed = uint64(time.Now().UnixNano())
	}
	sk := &soak{s: s, stats: newStats()}
	res, err := sk.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	fmt.Print(res.markdown())
	if s.JSON != "" {
		if err := res.writeJSON(s.JSON); err != nil {
			fmt.Fprintln(os.Stderr, "soak:", err)
			return 1
		}
		logf("wrote %s", s.JSON)
	}
	if !res.Pass {
		return 1
	}
	return 0
}

func (sk *soak) run(ctx context.Context) (*results, error) {
	s := sk.s
	dir, err := os.MkdirTemp("", "manifold-soak-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin, err := buildManifold(ctx, dir)
	if err != nil {
		return nil, err
	}

	for i := range 2 {
		b, err := startBackend(fmt.Sprintf("pair-%d", i+1))
		if err != nil {
			return nil, err
		}
		sk.pair = append(sk.pair, b)
	}
	for i := range 3 {
		b, err := startBackend(fmt.Sprintf("node-%d", i+1))
		if err != nil {
			return nil, err
		}
		sk.trio = append(sk.trio, b)
	}
	sk.backends = append(append([]*backend(nil), sk.pair...), sk.trio...)
	defer func() {
		for _, b := range sk.backends {
			b.kill()
		}
	}()

	file := filepath.Join(dir, "manifold.yaml")
	if err := os.WriteFile(file, []byte(proxyConfig(sk.pair, sk.trio)), 0o600); err != nil {
		return nil, err
	}
	sk.proxy, err = startProxy(bin, file)
	if err != nil {
		return nil, err
	}
	defer sk.proxy.Stop(time.Second)
	logf("manifold pid %d serving on %s, admin on %s; config %s", sk.proxy.Pid, sk.proxy.addr, sk.proxy.admin, file)

	sk.conns, err = newConns(sk.proxy.addr, s.Conns)
	if err != nil {
		return nil, err
	}
	defer sk.conns.close()
	if err := sk.waitReady(ctx); err != nil {
		return nil, err
	}

	sk.start = time.Now()
	sk.selfCPU0, _ = procfs.CPUSeconds(os.Getpid())
	before := sk.read()
	logf("idle before: %d goroutines, %d FDs, %.1f MiB RSS", before.Goroutines, before.FDs, float64(before.RSSKiB)/1024)
	logf("soak for %v: %d workers, at most %.0f calls/s, %d connections, seed %d", s.Duration, s.Concurrency, s.Rate, s.Conns, s.Seed)

	loadCtx, endLoad := context.WithTimeout(ctx, s.Duration)
	defer endLoad()
	var bg sync.WaitGroup
	bg.Go(func() { sk.sampleLoop(loadCtx) })
	bg.Go(func() { sk.faultLoop(loadCtx) })
	bg.Go(func() { sk.churnLoop(loadCtx) })
	tokens := pacer(loadCtx, s.Rate)
	var workers sync.WaitGroup
	for i := range s.Concurrency {
		workers.Go(func() { sk.worker(loadCtx, i, tokens) })
	}
	<-loadCtx.Done()
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	logf("load over; waiting for calls in flight")
	workers.Wait()
	bg.Wait()
	loadEnd := sk.since()
	if err := sk.proxy.Alive(); err != nil {
		return nil, err
	}

	// Every backend is up again and the calls are over: after a moment
	// the proxy should be back where it started.
	logf("settling for 5s")
	time.Sleep(5 * time.Second)
	after := sk.read()
	logf("idle after: %d goroutines, %d FDs, %.1f MiB RSS", after.Goroutines, after.FDs, float64(after.RSSKiB)/1024)
	selfCPU, _ := procfs.CPUSeconds(os.Getpid())

	killed, exitErr := sk.proxy.Stop(15 * time.Second)
	res := sk.results(before, after, loadEnd, selfCPU-sk.selfCPU0)
	switch {
	case killed:
		res.ProxyExit = "did not stop within 15s of SIGTERM; killed"
	case exitErr != nil:
		res.ProxyExit = exitErr.Error()
	default:
		res.ProxyExit = "exit status 0 after SIGTERM"
	}
	res.finish()
	return res, nil
}

// waitReady makes calls until both routes answer fully (the cluster and
// every fan-out member connected), then one call on every client
// connection, so that the idle reading before the load sees them all.
func (sk *soak) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ready := func(kd kind, connIndex int) error {
		want := 1
		if kd.fanout() {
			want = len(sk.trio)
		}
		for {
			sk.readyCalls++
			c := call{kind: kd, timeout: 5 * time.Second, req: request{CallID: uint64(sk.readyCalls), Count: 1}}
			conn := sk.conns.get(connIndex)
			o := c.do(conn.ClientConn, names(sk.trio), names(sk.pair))
			conn.done()
			if o.code == codes.OK && o.received == want && len(o.anomalies) == 0 && o.lost == 0 {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("the proxy did not answer %s calls fully within 30s (last: %v, %d of %d items, %v)", kd, o.code, o.received, want, o.anomalies)
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if err := ready(oneUnary, 0); err != nil {
		return err
	}
	if err := ready(fanUnary, 0); err != nil {
		return err
	}
	for i := 1; i < sk.s.Conns; i++ {
		if err := ready(oneUnary, i); err != nil {
			return err
		}
	}
	return nil
}

// pacer hands out at most rate tokens a second until ctx ends; with rate
// 0 it hands out tokens as fast as they are taken.
func pacer(ctx context.Context, rate float64) <-chan struct{} {
	ch := make(chan struct{})
	go func() {
		var tick <-chan time.Time
		if rate > 0 {
			t := time.NewTicker(time.Duration(float64(time.Second) / rate))
			defer t.Stop()
			tick = t.C
		}
		for {
			if tick != nil {
				select {
				case <-tick:
				case <-ctx.Done():
					return
				}
			}
			select {
			case ch <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch
}

func (sk *soak) worker(ctx context.Context, i int, tokens <-chan struct{}) {
	rng := rand.New(rand.NewPCG(sk.s.Seed, uint64(i)+1))
	fan, pair := names(sk.trio), names(sk.pair)
	for {
		select {
		case <-tokens:
		case <-ctx.Done():
			return
		}
		c := plan(rng, fan)
		conn := sk.conns.get(i)
		o := c.do(conn.ClientConn, fan, pair)
		conn.done()
		sk.stats.record(o)
	}
}

// faultLoop kills a backend now and then and restarts it a few seconds
// later; at most two are down at once. At the end every backend is up.
func (sk *soak) faultLoop(ctx context.Context) {
	s := sk.s
	if s.KillEvery == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(s.Seed, 0))
	var restarts sync.WaitGroup
	defer restarts.Wait()
	var down atomic.Int32
	for {
		wait := time.Duration(float64(s.KillEvery) * (0.5 + rng.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if down.Load() >= 2 {
			continue
		}
		b := sk.backends[rng.IntN(len(sk.backends))]
		if !b.kill() {
			continue
		}
		down.Add(1)
		sk.event("kill", b.name)
		downFor := s.DownMin + time.Duration(rng.Int64N(int64(s.DownMax-s.DownMin)+1))
		restarts.Go(func() {
			defer down.Add(-1)
			select {
			case <-ctx.Done():
			case <-time.After(downFor):
			}
			// Restart even when the load is over, so the run ends with
			// every backend up; give up only after a long time.
			rctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := b.restart(rctx); err != nil {
				logf("%v", err)
				sk.event("restart failed", b.name)
				return
			}
			sk.event("restart", b.name)
		})
	}
}

// churnLoop replaces one client connection now and then.
func (sk *soak) churnLoop(ctx context.Context) {
	if sk.s.ChurnEvery == 0 {
		return
	}
	t := time.NewTicker(sk.s.ChurnEvery)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := sk.conns.churn(i); err != nil {
			logf("new connection: %v", err)
			continue
		}
		sk.event("new connection", fmt.Sprintf("conn %d", i%sk.s.Conns))
	}
}

// sampleLoop reads the proxy every s.Sample and logs a line every
// s.TableEvery.
func (sk *soak) sampleLoop(ctx context.Context) {
	t := time.NewTicker(sk.s.Sample)
	defer t.Stop()
	nextLog := sk.s.TableEvery
	for {
		end := false
		select {
		case <-ctx.Done():
			end = true // one more reading, at the end of the load
		case <-t.C:
		}
		smp := sk.read()
		sk.mu.Lock()
		sk.samples = append(sk.samples, smp)
		sk.mu.Unlock()
		if el := time.Since(sk.start); el >= nextLog {
			nextLog += sk.s.TableEvery
			line := fmt.Sprintf("%4.0fs  %d calls (%d not OK), %d lost, %d anomalies; proxy %d goroutines, %d FDs, %.1f MiB RSS, %d backends down",
				smp.T, smp.Calls, smp.Failed, smp.Lost, sk.stats.anomalyCount(), smp.Goroutines, smp.FDs, float64(smp.RSSKiB)/1024, smp.Down)
			if smp.Error != "" {
				line += "; " + smp.Error
			}
			logf("%s", line)
		}
		if end {
			return
		}
	}
}

// read takes one sample of the proxy.
func (sk *soak) read() sample {
	smp := sample{T: sk.since()}
	var errs []string
	if m, err := sk.proxy.scrape(); err != nil {
		errs = append(errs, err.Error())
	} else {
		smp.Goroutines, smp.MetricFDs, smp.MetricRSS = m.Goroutines, m.OpenFDs, m.RSSBytes
	}
	if n, err := procfs.OpenFDs(sk.proxy.Pid); err != nil {
		errs = append(errs, err.Error())
	} else {
		smp.FDs = n
	}
	if m, err := procfs.Mem(sk.proxy.Pid); err != nil {
		errs = append(errs, err.Error())
	} else {
		smp.RSSKiB = m.RSSKiB
	}
	if c, err := procfs.CPUSeconds(sk.proxy.Pid); err == nil {
		smp.CPU = c
	}
	smp.Calls, smp.Failed, smp.Lost = sk.stats.totals()
	for _, b := range sk.backends {
		if !b.up() {
			smp.Down++
		}
	}
	smp.Error = strings.Join(errs, "; ")
	return smp
}
