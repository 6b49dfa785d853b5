package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/metadata"
)

// bench is one whole comparison: the processes and the runs.
type bench struct {
	s      *settings
	bin    string // the build directory
	procs  *procSet
	pinned bool

	backend *proc
	// members are the backend's three ports; members[0] is the upstream of
	// the one-to-one proxies.
	members []string
	proxies map[string]*proc
	// token is the bearer token manifold-filters' auth filter accepts.
	token string
}

// sendsToken reports whether the client sends the bearer token to proxy:
// to both config-mode columns, so that manifold-config gets the same
// requests as manifold-filters and the difference between them is the
// filters' work, not the cost of carrying a 200-byte header.
func sendsToken(proxy string) bool { return proxy == proxyFilters || proxy == proxyConfig }

// Cores: the client and the backend share core 0; every proxy gets core 1.
const (
	coreClient = 0
	coreProxy  = 1
)

func (b *bench) run(ctx context.Context) (*results, error) {
	b.pinned = os.Getenv(envPinned) == "1"
	if os.Getenv(envMwitkow) == "0" {
		var keep []string
		for _, p := range b.s.Proxies {
			if p != proxyMwitkow {
				keep = append(keep, p)
			}
		}
		b.s.Proxies = keep
	}
	res := &results{Settings: b.s, Machine: b.machine(), Command: "go run ./load " + strings.Join(os.Args[1:], " "), Started: time.Now().UTC()}
	if lim, err := raiseFileLimit(); err != nil {
		logf("could not raise the open-file limit: %v", err)
	} else {
		res.Machine.OpenFileLimit = lim
	}

	var err error
	b.backend, err = b.procs.start("backend", nil, coreClient, b.pinned, fanMembers, filepath.Join(b.bin, binBackend),
		"-ports", fmt.Sprint(fanMembers), "-stream-msgs", fmt.Sprint(b.s.StreamMsgs))
	if err != nil {
		return nil, err
	}
	b.members = b.backend.addrs
	res.Machine.PeakResetWorks = resetPeak(b.backend.Pid)

	var loads []scenario
	fanout := false
	for _, sc := range scenarios {
		if want(b.s.Scenarios, sc.Name) {
			loads = append(loads, sc)
			fanout = fanout || sc.Fanout
		}
	}
	b.proxies = map[string]*proc{}
	names := append([]string(nil), b.s.Proxies...)
	if fanout && want(b.s.Proxies, proxyManifold) {
		names = append(names, proxyFanout)
	}
	if len(loads) > 0 {
		for _, name := range names {
			p, err := b.startProxy(name, false)
			if err != nil {
				return nil, err
			}
			b.proxies[name] = p
		}
	}

	total := 0
	for _, sc := range loads {
		total += b.s.Repeats * len(b.targets(sc))
	}
	if want(b.s.Scenarios, scenarioIdle) {
		total += b.s.Repeats * (1 + len(oneToOneOnly(b.s.Proxies)))
	}
	logf("%d runs of %v (+%v warm-up) each; about %v in all", total, b.s.Duration, b.s.Warmup,
		(time.Duration(total) * (b.s.Duration + b.s.Warmup + 300*time.Millisecond)).Round(time.Second))

	done := 0
	for _, sc := range loads {
		targets := b.targets(sc)
		for r := range b.s.Repeats {
			for i, tgt := range rotate(targets, r) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				rr, err := runLoad(ctx, sc, tgt, b.s)
				if err != nil {
					return nil, err
				}
				rr.Repeat, rr.Order = r, i
				res.Runs = append(res.Runs, rr)
				done++
				line := fmt.Sprintf("[%d/%d] %s repeat %d/%d %-16s %9.0f/s p50 %7.0f µs p99 %7.0f µs", done, total, sc.Name, r+1, b.s.Repeats, tgt.Name, rr.OpsPerSec, rr.P50us, rr.P99us)
				if tgt.p != nil {
					line += fmt.Sprintf("  CPU %.3f s/10k  peak RSS %.1f MiB", rr.CPUPer10k, float64(rr.PeakRSSKiB)/1024)
				}
				if rr.Errors > 0 {
					line += fmt.Sprintf("  %d errors (first: %s)", rr.Errors, rr.FirstError)
				}
				logf("%s", line)
			}
		}
	}

	if want(b.s.Scenarios, scenarioIdle) {
		names := append([]string{direct}, oneToOneOnly(b.s.Proxies)...)
		for r := range b.s.Repeats {
			for i, name := range rotate(names, r) {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				ir, err := b.runIdle(ctx, name)
				if err != nil {
					return nil, err
				}
				ir.Repeat, ir.Order = r, i
				res.Idle = append(res.Idle, ir)
				done++
				logf("[%d/%d] idle repeat %d/%d %-16s %d streams: RSS %.1f → %.1f MiB, %.1f KiB per stream (opened in %.1f s)", done, total, r+1, b.s.Repeats, name,
					ir.Streams, float64(ir.RSSBeforeKiB)/1024, float64(ir.RSSAfterKiB)/1024, ir.KiBPerStream, ir.OpenSeconds)
			}
		}
	}
	res.Finished = time.Now().UTC()
	res.summarize()
	return res, nil
}

// targets lists what a scenario compares, direct first.
func (b *bench) targets(sc scenario) []*target {
	if !sc.Fanout {
		ts := []*target{{Name: direct, addrs: b.members[:1], calls: 1, answers: 1}}
		for _, name := range b.s.Proxies {
			p := b.proxies[name]
			t := &target{Name: name, proxy: name, addrs: p.addrs[:1], calls: 1, answers: 1, p: p}
			if sendsToken(name) {
				t.md = metadata.Pairs("authorization", "Bearer "+b.token)
			}
			ts = append(ts, t)
		}
		return ts
	}
	ts := []*target{{Name: direct + " ×3", addrs: b.members, calls: fanMembers, answers: 1}}
	for _, name := range oneToOneOnly(b.s.Proxies) {
		p := b.proxies[name]
		ts = append(ts, &target{Name: name + " ×3", proxy: name, addrs: p.addrs[:1], calls: fanMembers, answers: 1, p: p})
	}
	if p := b.proxies[proxyFanout]; p != nil {
		ts = append(ts, &target{Name: proxyFanout, proxy: proxyFanout, addrs: p.addrs[:1], calls: 1, answers: fanMembers, p: p})
	}
	return ts
}

// oneToOneOnly leaves the config-mode targets out of proxies: the fan-out
// and idle scenarios compare the proxies in quick mode.
func oneToOneOnly(proxies []string) []string {
	return slices.DeleteFunc(slices.Clone(proxies), func(p string) bool { return p == proxyFilters || p == proxyConfig })
}

// rotate returns list rotated left by r, so that every target takes every
// position across repeats.
func rotate[T any](list []T, r int) []T {
	if len(list) == 0 {
		return nil
	}
	r %= len(list)
	return append(append([]T(nil), list[r:]...), list[:r]...)
}

// startProxy starts a proxy in front of the backend (for direct, a fresh
// backend of its own) and waits until a call through it succeeds.
func (b *bench) startProxy(name string, fresh bool) (*proc, error) {
	var (
		p   *proc
		err error
	)
	up := b.members[0]
	switch name {
	case direct:
		p, err = b.procs.start("backend (fresh)", nil, coreClient, b.pinned, 1, filepath.Join(b.bin, binBackend))
	case proxyFloor:
		p, err = b.procs.start(name, nil, coreProxy, b.pinned, 1, filepath.Join(b.bin, binFloor), "-upstream", up)
	case proxyMwitkow:
		p, err = b.procs.start(name, nil, coreProxy, b.pinned, 1, filepath.Join(b.bin, binMwitkow), "-upstream", up)
	case proxyManifold:
		args := []string{"--listen", "127.0.0.1:0", "--upstream", up, "--log-format", "json", "--drain-timeout", "1s",
			// The idle scenario opens 10,000 streams on one connection, as
			// the floor and mwitkow (grpc-go's unlimited default) allow.
			"--max-concurrent-streams", "0"}
		if !b.s.NoKinds {
			args = append(args, "--protoset", filepath.Join(b.bin, protosetFile))
		}
		p, err = b.procs.start(name, b.s.ManifoldEnv, coreProxy, b.pinned, 1, filepath.Join(b.bin, binManifold), args...)
	case proxyFilters, proxyConfig:
		cfg, cfgErr := b.writeFiltersConfig(up, name == proxyFilters)
		if cfgErr != nil {
			return nil, cfgErr
		}
		p, err = b.procs.start(name, b.s.ManifoldEnv, coreProxy, b.pinned, 1, filepath.Join(b.bin, binManifold), "--config", cfg)
	case proxyFanout:
		var members []string
		for i, m := range b.members {
			members = append(members, fmt.Sprintf("n%d=%s", i, m))
		}
		p, err = b.procs.start(name, b.s.ManifoldEnv, coreProxy, b.pinned, 1, filepath.Join(b.bin, binManifold),
			"--listen", "127.0.0.1:0", "--fanout", strings.Join(members, ","), "--protoset", filepath.Join(b.bin, protosetFile),
			"--log-format", "json", "--drain-timeout", "1s", "--max-concurrent-streams", "0")
	default:
		return nil, fmt.Errorf("unknown proxy %q", name)
	}
	if err != nil {
		return nil, err
	}
	var md metadata.MD
	if sendsToken(name) {
		md = metadata.Pairs("authorization", "Bearer "+b.token)
	}
	if err := waitServing(p, name == proxyFanout, md); err != nil {
		p.stop()
		return nil, err
	}
	if !fresh {
		logf("%s serving on %s (pid %d)", name, p.addrs[0], p.Pid)
	}
	return p, nil
}

// waitServing makes unary calls through p until one succeeds.
func waitServing(p *proc, fanout bool, md metadata.MD) error {
	conn, err := dial(p.addrs[0])
	if err != nil {
		return err
	}
	defer conn.Close()
	req, respSize := encodedRequest(16, 16)
	if fanout {
		respSize *= fanMembers
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(metadata.NewOutgoingContext(context.Background(), md), 2*time.Second)
		var n int
		err := conn.Invoke(ctx, methodUnary, &req, &n, codecOpt)
		cancel()
		if err == nil && n < respSize {
			err = fmt.Errorf("answer of %d bytes, want at least %d", n, respSize)
		}
		if err == nil {
			return nil
		}
		if aerr := p.Alive(); aerr != nil {
			return aerr
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no successful call: %v\n%s", p.Name, err, p.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// machine describes where the benchmark ran.
type machine struct {
	Cores          int    `json:"cores"`
	CPUModel       string `json:"cpu_model"`
	MemTotal       string `json:"mem_total"`
	Kernel         string `json:"kernel"`
	Go             string `json:"go"`
	GRPC           string `json:"grpc_go"`
	Taskset        bool   `json:"taskset"`
	Pinned         bool   `json:"pinned"`
	OpenFileLimit  uint64 `json:"open_file_limit"`
	PeakResetWorks bool   `json:"peak_reset_works"`
}

func (b *bench) machine() machine {
	m := machine{Cores: cpuCount(), CPUModel: cpuModel(), Go: runtime.Version(), Pinned: b.pinned}
	_, err := exec.LookPath("taskset")
	m.Taskset = err == nil
	if v, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(v))
	}
	if v, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(v), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				m.MemTotal = strings.TrimSpace(rest)
			}
		}
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "google.golang.org/grpc" {
				m.GRPC = d.Version
			}
		}
	}
	return m
}
