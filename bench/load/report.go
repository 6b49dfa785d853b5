package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// results is everything one invocation measured; it is also the JSON
// output.
type results struct {
	Command     string          `json:"command"`
	Started     time.Time       `json:"started"`
	Finished    time.Time       `json:"finished"`
	Machine     machine         `json:"machine"`
	Settings    *settings       `json:"settings"`
	Scenarios   []scenario      `json:"scenarios"`
	Runs        []runResult     `json:"runs"`
	Idle        []idleResult    `json:"idle,omitempty"`
	Summary     []summaryRow    `json:"summary"`
	IdleSummary []idleSummary   `json:"idle_summary,omitempty"`
	AddedP50us  map[string]span `json:"serial_added_p50_us,omitempty"`
	Checks      []check         `json:"checks"`
}

// span is a median over repeats with its spread.
type span struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func spanOf(v []float64) span {
	var ok []float64
	for _, x := range v {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			ok = append(ok, x)
		}
	}
	if len(ok) == 0 {
		return span{Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	}
	slices.Sort(ok)
	med := ok[len(ok)/2]
	if len(ok)%2 == 0 {
		med = (ok[len(ok)/2-1] + ok[len(ok)/2]) / 2
	}
	return span{Median: med, Min: ok[0], Max: ok[len(ok)-1], N: len(ok)}
}

func (s span) valid() bool { return s.N > 0 }

// MarshalJSON writes null for a span without values.
func (s span) MarshalJSON() ([]byte, error) {
	if !s.valid() {
		return []byte("null"), nil
	}
	type plain span
	return json.Marshal(plain(s))
}

// summaryRow summarizes one target in one scenario over the repeats. The
// ratios are taken per repeat, against the other target measured in the
// same repeat, then summarized.
type summaryRow struct {
	Scenario string `json:"scenario"`
	Target   string `json:"target"`

	OpsPerSec  span `json:"ops_per_sec"`
	P50us      span `json:"p50_us"`
	P99us      span `json:"p99_us"`
	CPUPer10k  span `json:"proxy_cpu_seconds_per_10k"`
	PeakRSSMiB span `json:"proxy_peak_rss_mib"`

	ThroughputVsDirect span `json:"throughput_vs_direct"`
	P50VsDirect        span `json:"p50_vs_direct"`
	P99VsDirect        span `json:"p99_vs_direct"`
	AddedP50us         span `json:"added_p50_us"`
	// Against the floor proxy (floor ×3 in the fan-out scenarios).
	ThroughputVsFloor span `json:"throughput_vs_floor"`
	CPUVsFloor        span `json:"cpu_vs_floor"`
	// Against mwitkow/grpc-proxy (×3 in the fan-out scenarios).
	CPUVsMwitkow span `json:"cpu_vs_mwitkow"`
	// Fan-out only: against three one-to-one calls through Manifold.
	CPUVsOneToOne span `json:"cpu_vs_manifold_one_to_one_x3"`
	// manifold-filters only: against Manifold in config mode with an
	// empty chain (manifold-config).
	CPUVsEmptyChain span `json:"cpu_vs_manifold_empty_chain,omitzero"`

	Errors int64 `json:"errors"`
}

type idleSummary struct {
	Target       string `json:"target"`
	KiBPerStream span   `json:"kib_per_stream"`
	RSSBeforeMiB span   `json:"rss_before_mib"`
	RSSAfterMiB  span   `json:"rss_after_mib"`
	PeakRSSMiB   span   `json:"peak_rss_mib"`
}

// check is one of issue 7's targets, measured.
type check struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Goal     string `json:"goal"`
	Met      string `json:"met"` // yes, no, or n/a
}

// withSuffix names the comparable target in a scenario: "floor" or
// "floor ×3".
func withSuffix(sc scenario, name string) string {
	if sc.Fanout {
		return name + " ×3"
	}
	return name
}

func (r *results) summarize() {
	r.Scenarios = nil
	for _, sc := range scenarios {
		if !want(r.Settings.Scenarios, sc.Name) {
			continue
		}
		r.Scenarios = append(r.Scenarios, sc)
		// byRep[repeat][target]
		byRep := map[int]map[string]runResult{}
		var order []string
		for _, run := range r.Runs {
			if run.Scenario != sc.Name {
				continue
			}
			if byRep[run.Repeat] == nil {
				byRep[run.Repeat] = map[string]runResult{}
			}
			byRep[run.Repeat][run.Target] = run
			if !slices.Contains(order, run.Target) {
				order = append(order, run.Target)
			}
		}
		directName := withSuffix(sc, direct)
		order = sortTargets(order, directName)
		for _, t := range order {
			row := summaryRow{Scenario: sc.Name, Target: t}
			var ops, p50, p99, cpu, rss, thrD, p50D, p99D, addD, thrF, cpuF, cpuM, cpu1, cpuE []float64
			for rep := 0; rep < r.Settings.Repeats; rep++ {
				m := byRep[rep]
				run, ok := m[t]
				if !ok {
					continue
				}
				row.Errors += run.Errors
				ops = append(ops, run.OpsPerSec)
				p50 = append(p50, run.P50us)
				p99 = append(p99, run.P99us)
				if run.CPUPer10k > 0 {
					cpu = append(cpu, run.CPUPer10k)
					rss = append(rss, float64(run.PeakRSSKiB)/1024)
				}
				if d, ok := m[directName]; ok && t != directName {
					thrD = append(thrD, run.OpsPerSec/d.OpsPerSec)
					p50D = append(p50D, run.P50us/d.P50us)
					p99D = append(p99D, run.P99us/d.P99us)
					addD = append(addD, run.P50us-d.P50us)
				}
				if f, ok := m[withSuffix(sc, proxyFloor)]; ok && t != f.Target && run.CPUPer10k > 0 {
					thrF = append(thrF, run.OpsPerSec/f.OpsPerSec)
					cpuF = append(cpuF, run.CPUPer10k/f.CPUPer10k)
				}
				if w, ok := m[withSuffix(sc, proxyMwitkow)]; ok && t != w.Target && run.CPUPer10k > 0 {
					cpuM = append(cpuM, run.CPUPer10k/w.CPUPer10k)
				}
				if o, ok := m[withSuffix(sc, proxyManifold)]; ok && sc.Fanout && t == proxyFanout {
					cpu1 = append(cpu1, run.CPUPer10k/o.CPUPer10k)
				}
				if o, ok := m[proxyConfig]; ok && t == proxyFilters && o.CPUPer10k > 0 {
					cpuE = append(cpuE, run.CPUPer10k/o.CPUPer10k)
				}
			}
			row.OpsPerSec, row.P50us, row.P99us = spanOf(ops), spanOf(p50), spanOf(p99)
			row.CPUPer10k, row.PeakRSSMiB = spanOf(cpu), spanOf(rss)
			row.ThroughputVsDirect, row.P50VsDirect, row.P99VsDirect, row.AddedP50us = spanOf(thrD), spanOf(p50D), spanOf(p99D), spanOf(addD)
			row.ThroughputVsFloor, row.CPUVsFloor, row.CPUVsMwitkow, row.CPUVsOneToOne = spanOf(thrF), spanOf(cpuF), spanOf(cpuM), spanOf(cpu1)
			row.CPUVsEmptyChain = spanOf(cpuE)
			r.Summary = append(r.Summary, row)
		}
	}

	if len(r.Idle) > 0 {
		var order []string
		for _, ir := range r.Idle {
			if !slices.Contains(order, ir.Target) {
				order = append(order, ir.Target)
			}
		}
		for _, t := range sortTargets(order, direct) {
			var kib, before, after, peak []float64
			for _, ir := range r.Idle {
				if ir.Target == t {
					kib = append(kib, ir.KiBPerStream)
					before = append(before, float64(ir.RSSBeforeKiB)/1024)
					after = append(after, float64(ir.RSSAfterKiB)/1024)
					peak = append(peak, float64(ir.PeakRSSKiB)/1024)
				}
			}
			r.IdleSummary = append(r.IdleSummary, idleSummary{Target: t, KiBPerStream: spanOf(kib), RSSBeforeMiB: spanOf(before), RSSAfterMiB: spanOf(after), PeakRSSMiB: spanOf(peak)})
		}
	}

	if row := r.row("serial", proxyFloor); row != nil {
		r.AddedP50us = map[string]span{}
		for _, p := range []string{proxyFloor, proxyManifold, proxyMwitkow} {
			if row := r.row("serial", p); row != nil {
				r.AddedP50us[p] = row.AddedP50us
			}
		}
	}
	r.checks()
}

// sortTargets puts direct first, then floor, Manifold, mwitkow, fan-out.
func sortTargets(names []string, directName string) []string {
	rank := func(n string) int {
		switch {
		case n == directName:
			return 0
		case n == proxyConfig:
			return 4
		case strings.HasPrefix(n, proxyFanout), n == proxyFilters:
			return 5
		case strings.HasPrefix(n, proxyFloor):
			return 1
		case strings.HasPrefix(n, proxyManifold):
			return 2
		case strings.HasPrefix(n, proxyMwitkow):
			return 3
		}
		return 6
	}
	out := slices.Clone(names)
	slices.SortStableFunc(out, func(a, b string) int { return rank(a) - rank(b) })
	return out
}

func (r *results) row(scenarioName, target string) *summaryRow {
	for i := range r.Summary {
		if r.Summary[i].Scenario == scenarioName && r.Summary[i].Target == target {
			return &r.Summary[i]
		}
	}
	return nil
}

// checks measures issue 7's targets.
func (r *results) checks() {
	add := func(target string, s span, goal string, ok func(float64) bool) {
		c := check{Target: target, Goal: goal, Met: "n/a", Measured: "not measured"}
		if s.valid() {
			c.Measured = fmtSpan(s, fmtRatio)
			if ok(s.Median) {
				c.Met = "yes"
			} else {
				c.Met = "no"
			}
		}
		r.Checks = append(r.Checks, c)
	}
	atMost := func(x float64) func(float64) bool { return func(v float64) bool { return v <= x } }
	atLeast := func(x float64) func(float64) bool { return func(v float64) bool { return v >= x } }
	get := func(sc, t string) summaryRow {
		if row := r.row(sc, t); row != nil {
			return *row
		}
		return summaryRow{}
	}
	add("unary 16 B: Manifold CPU per call ÷ floor", get("unary-16B", proxyManifold).CPUVsFloor, "≤ 1.15", atMost(1.15))
	add("bidi 16 B: Manifold CPU per message ÷ floor", get("bidi-16B", proxyManifold).CPUVsFloor, "≤ 1.15", atMost(1.15))
	add("unary 64 KiB: Manifold CPU per call ÷ floor", get("unary-64KiB", proxyManifold).CPUVsFloor, "≤ 1.20", atMost(1.20))
	for _, sc := range r.Scenarios {
		add(sc.Title+": Manifold throughput ÷ floor's", get(sc.Name, withSuffix(sc, proxyManifold)).ThroughputVsFloor, "≥ 0.90", atLeast(0.9))
	}
	add("unary 16 B: Manifold CPU per call ÷ mwitkow's", get("unary-16B", proxyManifold).CPUVsMwitkow, "< 1", func(v float64) bool { return v < 1 })
	add("unary 64 KiB: Manifold CPU per call ÷ mwitkow's", get("unary-64KiB", proxyManifold).CPUVsMwitkow, "< 1", func(v float64) bool { return v < 1 })
	add("unary 16 B: "+chainLabel(r.Settings.Filters)+" CPU per call ÷ empty chain (config mode)", get("unary-16B", proxyFilters).CPUVsEmptyChain, "≤ 1.15", atMost(1.15))
	add("3-node unary fan-out: CPU ÷ 3 one-to-one calls through Manifold", get("fanout-unary", proxyFanout).CPUVsOneToOne, "≤ 1", atMost(1))
	add("3-node stream fan-out: CPU ÷ 3 one-to-one streams through Manifold", get("fanout-stream", proxyFanout).CPUVsOneToOne, "≤ 1", atMost(1))

	c := check{Target: "idle stream through Manifold: KiB held", Goal: "≤ 32 KiB", Met: "n/a", Measured: "not measured"}
	for _, is := range r.IdleSummary {
		if is.Target == proxyManifold && is.KiBPerStream.valid() {
			c.Measured = fmtSpan(is.KiBPerStream, fmtFloat1) + " KiB"
			c.Met = yesNo(is.KiBPerStream.Median <= 32)
		}
	}
	r.Checks = append(r.Checks, c)

	c = check{Target: "one call at a time: Manifold's added p50 vs mwitkow's", Goal: "≤ mwitkow's", Met: "n/a", Measured: "not measured"}
	if m, ok := r.AddedP50us[proxyManifold]; ok && m.valid() {
		c.Measured = fmtSpan(m, fmtFloat1) + " µs"
		if w, ok := r.AddedP50us[proxyMwitkow]; ok && w.valid() {
			c.Measured += " vs " + fmtSpan(w, fmtFloat1) + " µs"
			c.Met = yesNo(m.Median <= w.Median)
		}
	}
	r.Checks = append(r.Checks, c)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// markdown renders the summary as markdown tables.
func (r *results) markdown() string {
	var b strings.Builder
	m := r.Machine
	pin := "nothing pinned"
	if m.Pinned {
		pin = "each proxy pinned to core 1 (taskset), client and backend to core 0"
	}
	fmt.Fprintf(&b, "Machine: %d cores, %s, %s; %s, grpc-go %s; %s; every proxy and the backend run with GOMAXPROCS=1.\n\n",
		m.Cores, m.CPUModel, m.MemTotal, m.Go, m.GRPC, pin)
	fmt.Fprintf(&b, "`%s`: %d repeats of %v each (after %v warm-up), %d in flight; cells are medians over the repeats with the min–max spread; every ratio is taken within one repeat (the targets' order rotates between repeats), then summarized.\n\n",
		r.Command, r.Settings.Repeats, r.Settings.Duration, r.Settings.Warmup, r.Settings.InFlight)

	if len(r.Summary) > 0 {
		b.WriteString("| scenario | target | ops/s | ÷ direct | p50 µs | ÷ direct | p99 µs | ÷ direct | proxy CPU-s per 10k ops | CPU ÷ floor | proxy peak RSS MiB |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, row := range r.Summary {
			title := row.Scenario
			for _, sc := range r.Scenarios {
				if sc.Name == row.Scenario {
					title = sc.Title
				}
			}
			target := row.Target
			if row.Errors > 0 {
				target += fmt.Sprintf(" (%d errors)", row.Errors)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", title, target,
				fmtSpan(row.OpsPerSec, fmtInt), fmtSpan(row.ThroughputVsDirect, fmtRatio),
				fmtSpan(row.P50us, fmtMicros), fmtSpan(row.P50VsDirect, fmtRatio),
				fmtSpan(row.P99us, fmtMicros), fmtSpan(row.P99VsDirect, fmtRatio),
				fmtSpan(row.CPUPer10k, fmtCPU), fmtSpan(row.CPUVsFloor, fmtRatio), fmtSpan(row.PeakRSSMiB, fmtFloat1))
		}
		b.WriteString("\nOne op is one call (unary), one message round trip (bidi ping-pong), or in the 3-node scenarios one fan-out call (`manifold-fanout`, whose answer holds the three members' answers) or three one-to-one calls made at once (`×3`; direct: one to each member). In the fan-out rows, CPU ÷ floor compares with `floor ×3`.\n")
	}
	if len(r.AddedP50us) > 0 {
		var parts []string
		for _, p := range []string{proxyFloor, proxyManifold, proxyMwitkow} {
			if s, ok := r.AddedP50us[p]; ok && s.valid() {
				parts = append(parts, fmt.Sprintf("%s %s µs", p, fmtSpan(s, fmtFloat1)))
			}
		}
		fmt.Fprintf(&b, "\nAdded p50 latency, one call at a time (p50 − direct p50 of the same repeat): %s.\n", strings.Join(parts, "; "))
	}
	if len(r.IdleSummary) > 0 {
		fmt.Fprintf(&b, "\nIdle streams: %d bidi streams opened over one connection, one 16 B round trip each, then held idle; RSS of a fresh process before and after (direct: a fresh backend, what grpc-go's server alone holds).\n\n", r.Settings.IdleStreams)
		b.WriteString("| target | KiB per idle stream | RSS before MiB | RSS after MiB | peak RSS MiB |\n|---|---|---|---|---|\n")
		for _, is := range r.IdleSummary {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", is.Target, fmtSpan(is.KiBPerStream, fmtFloat1),
				fmtSpan(is.RSSBeforeMiB, fmtFloat1), fmtSpan(is.RSSAfterMiB, fmtFloat1), fmtSpan(is.PeakRSSMiB, fmtFloat1))
		}
	}
	if len(r.Checks) > 0 {
		b.WriteString("\nIssue 7's targets (medians of per-repeat ratios):\n\n| target | measured | goal | met |\n|---|---|---|---|\n")
		for _, c := range r.Checks {
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", c.Target, c.Measured, c.Goal, c.Met)
		}
	}
	return b.String()
}

func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// fmtSpan writes "median (min–max)", or just the median when the spread is
// empty; "–" when nothing was measured.
func fmtSpan(s span, f func(float64) string) string {
	if !s.valid() {
		return "–"
	}
	med := f(s.Median)
	lo, hi := f(s.Min), f(s.Max)
	if s.N < 2 || lo == hi {
		return med
	}
	return fmt.Sprintf("%s (%s–%s)", med, lo, hi)
}

func fmtRatio(v float64) string  { return strconv.FormatFloat(v, 'f', 2, 64) }
func fmtFloat1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

func fmtCPU(v float64) string {
	if v >= 1 {
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}

func fmtMicros(v float64) string {
	if v >= 100 {
		return fmtInt(v)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// fmtInt writes v rounded, with thousands separators.
func fmtInt(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}
