package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// results is everything the report shows; the JSON file holds it all.
type results struct {
	Command  string    `json:"command"`
	Settings *settings `json:"settings"`
	Started  time.Time `json:"started"`
	Machine  string    `json:"machine"`

	LoadSeconds float64              `json:"load_s"`
	Calls       int64                `json:"calls"`
	ReadyCalls  int                  `json:"readiness_calls"` // before the load; not in Calls
	Kinds       map[string]kindStats `json:"kinds"`
	Received    int64                `json:"items_received"`
	Lost        int64                `json:"items_lost"`
	Anomalies   int                  `json:"anomalies"`
	Examples    []string             `json:"examples,omitempty"`

	Backends []backendStats `json:"backends"`
	Faults   []faultEvent   `json:"faults"`
	Churns   int64          `json:"connections_replaced"`

	Samples    []sample  `json:"samples"`
	IdleBefore sample    `json:"idle_before"`
	IdleAfter  sample    `json:"idle_after"`
	Plateau    []plateau `json:"plateau"`
	ProxyCPU   float64   `json:"proxy_cpu_s"`
	SoakCPU    float64   `json:"soak_cpu_s"` // this process: client and backends

	ProxyLog  map[string]int `json:"proxy_log_levels"`
	AccessLog map[string]int `json:"proxy_access_log_codes"`
	ProxyErrs []string       `json:"proxy_error_records,omitempty"`
	ProxyExit string         `json:"proxy_exit"`
	Failures  []string       `json:"failures"`
	Pass      bool           `json:"pass"`
}

type backendStats struct {
	Name     string `json:"name"`
	Calls    int64  `json:"calls"`
	Sent     int64  `json:"items_sent"`
	Kills    int64  `json:"kills"`
	Restarts int64  `json:"restarts"`
}

// plateau compares a resource's middle third with its last third.
type plateau struct {
	Metric    string  `json:"metric"`
	Samples   [2]int  `json:"samples"` // in the middle and last thirds
	MiddleMax float64 `json:"middle_max"`
	LastMax   float64 `json:"last_max"`
	MiddleMed float64 `json:"middle_median"`
	LastMed   float64 `json:"last_median"`
	Limit     float64 `json:"limit"` // the last third's maximum may reach this
	Pass      bool    `json:"pass"`
	Note      string  `json:"note,omitempty"`
}

// Fixed growth allowed on top of the tolerance: the noise of a proxy
// under a load that comes and goes with the faults.
const (
	slackGoroutines = 64
	slackFDs        = 8
	slackRSSMiB     = 16
)

func (sk *soak) results(before, after sample, loadEnd, soakCPU float64) *results {
	st := sk.stats
	res := &results{
		Command:  "go run ./soak " + strings.Join(os.Args[1:], " "),
		Settings: sk.s,
		Started:  sk.start.UTC(),
		Machine:  fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version()),

		LoadSeconds: loadEnd,
		Kinds:       map[string]kindStats{},
		IdleBefore:  before,
		IdleAfter:   after,
		SoakCPU:     soakCPU,
		Churns:      sk.conns.churns.Load(),
		ReadyCalls:  sk.readyCalls,
	}
	res.Calls, _, res.Lost = st.totals()
	st.mu.Lock()
	for k := range numKinds {
		ks := st.kinds[k]
		res.Kinds[k.String()] = ks
		res.Received += ks.Received
	}
	res.Anomalies = st.anomalies
	res.Examples = st.examples
	st.mu.Unlock()
	for _, b := range sk.backends {
		res.Backends = append(res.Backends, backendStats{Name: b.name, Calls: b.calls.Load(), Sent: b.sent.Load(), Kills: b.kills.Load(), Restarts: b.restarts.Load()})
	}
	sk.mu.Lock()
	res.Samples = sk.samples
	res.Faults = sk.faults
	sk.mu.Unlock()
	if n := len(res.Samples); n > 0 {
		res.ProxyCPU = res.Samples[n-1].CPU - before.CPU // the last reading is at the end of the load
	}
	p := sk.proxy
	p.mu.Lock()
	res.ProxyLog, res.AccessLog, res.ProxyErrs = maps.Clone(p.levels), maps.Clone(p.access), slices.Clone(p.errLogs)
	p.mu.Unlock()
	return res
}

// finish checks the plateaus and decides the verdict.
func (r *results) finish() {
	r.Plateau = plateaus(r.Samples, r.Settings.Duration.Seconds(), r.Settings.Tolerance)
	if r.Lost > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d items lost", r.Lost))
	}
	if r.Anomalies > 0 {
		r.Failures = append(r.Failures, fmt.Sprintf("%d wrong answers (anomalies)", r.Anomalies))
	}
	for _, p := range r.Plateau {
		if !p.Pass {
			r.Failures = append(r.Failures, fmt.Sprintf("%s did not plateau (%s)", p.Metric, p.describe()))
		}
	}
	if !strings.HasPrefix(r.ProxyExit, "exit status 0") {
		r.Failures = append(r.Failures, "proxy: "+r.ProxyExit)
	}
	r.Pass = len(r.Failures) == 0
}

// plateaus compares the maximum of each resource in the last third of the
// load with the maximum in the middle third (the first third is warm-up):
// a leak grows steadily, so the last third's maximum stands above the
// middle's by more than the noise.
func plateaus(samples []sample, loadEnd, tol float64) []plateau {
	// Open files do not vary with the load beyond a few connections, so
	// they get the fixed slack only: a tolerance in percent of a level
	// that includes a leak would let the leak through.
	metrics := []struct {
		name  string
		tol   float64
		slack float64
		get   func(sample) float64
	}{
		{"goroutines", tol, slackGoroutines, func(s sample) float64 { return float64(s.Goroutines) }},
		{"open FDs", 0, slackFDs, func(s sample) float64 { return float64(s.FDs) }},
		{"RSS MiB", tol, slackRSSMiB, func(s sample) float64 { return float64(s.RSSKiB) / 1024 }},
	}
	var out []plateau
	for _, m := range metrics {
		var mid, last []float64
		for _, s := range samples {
			if s.Error != "" {
				continue
			}
			switch {
			case s.T >= loadEnd/3 && s.T < 2*loadEnd/3:
				mid = append(mid, m.get(s))
			case s.T >= 2*loadEnd/3:
				last = append(last, m.get(s))
			}
		}
		p := plateau{Metric: m.name, Samples: [2]int{len(mid), len(last)}}
		if len(mid) < 2 || len(last) < 2 {
			p.Note = "too few readings (fewer than 2 in the middle or the last third): run longer or sample more often"
			out = append(out, p)
			continue
		}
		p.MiddleMax, p.LastMax = slices.Max(mid), slices.Max(last)
		p.MiddleMed, p.LastMed = median(mid), median(last)
		p.Limit = math.Floor(p.MiddleMax*(1+m.tol) + m.slack)
		p.Pass = p.LastMax <= p.Limit
		out = append(out, p)
	}
	return out
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func (p plateau) describe() string {
	if p.Note != "" {
		return p.Note
	}
	return fmt.Sprintf("last-third max %.0f vs middle-third max %.0f, limit %.0f", p.LastMax, p.MiddleMax, p.Limit)
}

func (r *results) markdown() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL: " + strings.Join(r.Failures, "; ")
	}
	fmt.Fprintf(&b, "# Soak: %s\n\n", verdict)
	fmt.Fprintf(&b, "`%s` — %s; %.0f s of load from %s, seed %d, %d workers, at most %.0f calls/s over %d connections.\n\n",
		r.Command, r.Machine, r.LoadSeconds, r.Started.Format(time.RFC3339), r.Settings.Seed, r.Settings.Concurrency, r.Settings.Rate, r.Settings.Conns)

	fmt.Fprintf(&b, "## Calls\n\n%d calls, %d items received, **%d lost**, **%d anomalies**.\n\n", r.Calls, r.Received, r.Lost, r.Anomalies)
	codes := map[string]bool{}
	for _, k := range r.Kinds {
		for c := range k.Codes {
			codes[c] = true
		}
	}
	cols := slices.Sorted(maps.Keys(codes))
	if i := slices.Index(cols, "OK"); i > 0 {
		cols = append([]string{"OK"}, slices.Delete(cols, i, i+1)...)
	}
	b.WriteString("| kind | variant | calls |")
	for _, c := range cols {
		b.WriteString(" " + c + " |")
	}
	b.WriteString(" items | error items | lost |\n|---|---|---:|" + strings.Repeat("---:|", len(cols)) + "---:|---:|---:|\n")
	for k := range numKinds {
		ks := r.Kinds[k.String()]
		for v := range numVariants {
			byCode := ks.Variants[v.String()]
			if len(byCode) == 0 {
				continue
			}
			n := 0
			for _, x := range byCode {
				n += x
			}
			fmt.Fprintf(&b, "| %s | %s | %d |", k, v, n)
			for _, c := range cols {
				fmt.Fprintf(&b, " %s |", blank(byCode[c]))
			}
			b.WriteString(" | | |\n")
		}
		fmt.Fprintf(&b, "| **%s** | all | **%d** |", k, ks.Calls)
		for _, c := range cols {
			fmt.Fprintf(&b, " %s |", blank(ks.Codes[c]))
		}
		fmt.Fprintf(&b, " %d | %d | %d |\n", ks.Received, ks.ErrorItems, ks.Lost)
	}
	b.WriteString("\nVariants: plain; slow reader (pauses after each message); cancel (the client cancels mid-call); " +
		"deadline (expires mid-call); backend error (a backend fails on purpose with ABORTED mid-call). " +
		"Any variant can also meet a killed backend (UNAVAILABLE, or an error item in a fan-out). " +
		"A fan-out call is OK even when members failed: their failures are error items.\n")
	if len(r.Examples) > 0 {
		b.WriteString("\nFirst losses and anomalies:\n\n")
		for _, e := range r.Examples {
			fmt.Fprintf(&b, "- %s\n", e)
		}
	}

	b.WriteString("\n## Faults\n\n| backend | calls | items sent | kills | restarts |\n|---|---:|---:|---:|---:|\n")
	for _, be := range r.Backends {
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d |\n", be.Name, be.Calls, be.Sent, be.Kills, be.Restarts)
	}
	fmt.Fprintf(&b, "\nClient connections replaced: %d.\n", r.Churns)

	b.WriteString("\n## Proxy over time\n\n")
	fmt.Fprintf(&b, "Maximum of the readings (every %v) in each %v; goroutines from `/metrics` (go_goroutines), FDs and RSS from /proc.\n\n", r.Settings.Sample, r.Settings.TableEvery)
	b.WriteString("| until | calls | not OK | goroutines | FDs | RSS MiB | proxy CPU | backends down | lost |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	span, step := r.Settings.TableEvery.Seconds(), r.Settings.Sample.Seconds()
	prev := sample{CPU: r.IdleBefore.CPU}
	for i := 0; i < len(r.Samples); {
		// A reading belongs to the span its nominal time (a multiple of
		// -sample; the ticker runs a little late) ends.
		window := func(s sample) float64 {
			nominal := math.Round(s.T/step) * step
			return math.Ceil(nominal/span) * span
		}
		end := window(r.Samples[i])
		var row []sample
		for ; i < len(r.Samples) && window(r.Samples[i]) == end; i++ {
			row = append(row, r.Samples[i])
		}
		last := row[len(row)-1]
		g, f, m, down := 0, 0, int64(0), 0
		for _, s := range row {
			g, f, m, down = max(g, s.Goroutines), max(f, s.FDs), max(m, s.RSSKiB), max(down, s.Down)
		}
		cpu := "—"
		if dt := last.T - prev.T; dt > 0 && last.CPU > 0 {
			cpu = fmt.Sprintf("%.0f %%", 100*(last.CPU-prev.CPU)/dt)
		}
		fmt.Fprintf(&b, "| %.0f s | %d | %d | %d | %d | %.1f | %s | %d | %d |\n", last.T, last.Calls-prev.Calls, last.Failed-prev.Failed, g, f, float64(m)/1024, cpu, down, last.Lost)
		prev = last
	}
	fmt.Fprintf(&b, "| idle before | | | %d | %d | %.1f | | | |\n", r.IdleBefore.Goroutines, r.IdleBefore.FDs, float64(r.IdleBefore.RSSKiB)/1024)
	fmt.Fprintf(&b, "| idle after (5 s) | | | %d | %d | %.1f | | | |\n", r.IdleAfter.Goroutines, r.IdleAfter.FDs, float64(r.IdleAfter.RSSKiB)/1024)
	if r.LoadSeconds > 0 {
		fmt.Fprintf(&b, "\nCPU over the load: proxy %.0f %% of a core, this process (client and backends) %.0f %%.\n",
			100*r.ProxyCPU/r.Settings.Duration.Seconds(), 100*r.SoakCPU/r.LoadSeconds)
	}

	fmt.Fprintf(&b, "\n## Plateau\n\nLast third of the load against the middle third (the first is warm-up): the last third's maximum may exceed the middle's by %.0f %% plus %d goroutines, by %.0f %% plus %d MiB of RSS, and by %d open FDs.\n\n",
		100*r.Settings.Tolerance, slackGoroutines, 100*r.Settings.Tolerance, slackRSSMiB, slackFDs)
	b.WriteString("| metric | middle max | last max | limit | middle median | last median | readings | verdict |\n|---|---:|---:|---:|---:|---:|---|---|\n")
	for _, p := range r.Plateau {
		verdict := "plateau"
		if !p.Pass {
			verdict = "**GROWING**"
			if p.Note != "" {
				verdict = "**" + p.Note + "**"
			}
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.0f | %.0f | %.0f | %d + %d | %s |\n", p.Metric, p.MiddleMax, p.LastMax, p.Limit, p.MiddleMed, p.LastMed, p.Samples[0], p.Samples[1], verdict)
	}

	b.WriteString("\n## Proxy process\n\n")
	fmt.Fprintf(&b, "- log records by level: %s\n", counts(r.ProxyLog))
	fmt.Fprintf(&b, "- access-log records by code (the proxy's view of the %d calls and %d readiness calls before the load; %d records): %s\n",
		r.Calls, r.ReadyCalls, sum(r.AccessLog), counts(r.AccessLog))
	for _, e := range r.ProxyErrs {
		fmt.Fprintf(&b, "- %s\n", truncate(e, 300))
	}
	fmt.Fprintf(&b, "- shutdown: %s\n", r.ProxyExit)
	return b.String()
}

func blank(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

func counts(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func (r *results) writeJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
