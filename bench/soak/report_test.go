package main

import (
	"strings"
	"testing"
)

// series is n readings over 90 s, goroutines from g(i), FDs 20, RSS
// rss(i) MiB.
func series(n int, g func(i int) int, rss func(i int) int64) []sample {
	var out []sample
	for i := range n {
		out = append(out, sample{T: float64(i+1) * 90 / float64(n), Goroutines: g(i), FDs: 20, RSSKiB: rss(i) << 10})
	}
	return out
}

func TestPlateaus(t *testing.T) {
	flat := func(int) int { return 100 }
	flatRSS := func(int) int64 { return 40 }
	tests := []struct {
		name    string
		samples []sample
		pass    map[string]bool
	}{
		{"flat", series(18, flat, flatRSS), map[string]bool{"goroutines": true, "open FDs": true, "RSS MiB": true}},
		{"noise within the tolerance", series(18, func(i int) int { return 100 + 30*(i%2) }, func(i int) int64 { return 40 + int64(i%3) }),
			map[string]bool{"goroutines": true, "open FDs": true, "RSS MiB": true}},
		{"goroutine leak", series(18, func(i int) int { return 100 + 20*i }, flatRSS), map[string]bool{"goroutines": false, "open FDs": true, "RSS MiB": true}},
		{"memory leak", series(18, flat, func(i int) int64 { return 40 + 5*int64(i) }), map[string]bool{"goroutines": true, "open FDs": true, "RSS MiB": false}},
		{"too few readings", series(4, flat, flatRSS), map[string]bool{"goroutines": false, "open FDs": false, "RSS MiB": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps := plateaus(tt.samples, 90, 0.2)
			if len(ps) != len(tt.pass) {
				t.Fatalf("%d plateaus, want %d", len(ps), len(tt.pass))
			}
			for _, p := range ps {
				want, ok := tt.pass[p.Metric]
				if !ok {
					t.Fatalf("unexpected metric %q", p.Metric)
				}
				if p.Pass != want {
					t.Errorf("%s: pass = %v, want %v (%s)", p.Metric, p.Pass, want, p.describe())
				}
			}
		})
	}
}

// TestVerdict: a loss, an anomaly, a growing resource or an unclean
// shutdown each fail the run, and the report says why.
func TestVerdict(t *testing.T) {
	good := func() *results {
		return &results{Settings: &settings{Duration: 90e9, Tolerance: 0.2, Sample: 5e9, TableEvery: 30e9}, LoadSeconds: 90,
			Samples: series(18, func(int) int { return 100 }, func(int) int64 { return 40 }), ProxyExit: "exit status 0 after SIGTERM"}
	}
	tests := []struct {
		name   string
		change func(r *results)
		fail   string // "" to pass
	}{
		{"clean", func(*results) {}, ""},
		{"lost", func(r *results) { r.Lost = 3 }, "3 items lost"},
		{"anomaly", func(r *results) { r.Anomalies = 1 }, "1 wrong answers"},
		{"leak", func(r *results) {
			for i := range r.Samples {
				r.Samples[i].FDs = 20 + 2*i
			}
		}, "open FDs did not plateau"},
		{"killed", func(r *results) { r.ProxyExit = "did not stop within 15s of SIGTERM; killed" }, "proxy: did not stop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := good()
			tt.change(r)
			r.finish()
			if r.Pass != (tt.fail == "") {
				t.Fatalf("pass = %v, failures %q", r.Pass, r.Failures)
			}
			md := r.markdown()
			if tt.fail == "" {
				if !strings.HasPrefix(md, "# Soak: PASS") {
					t.Errorf("report starts %q", md[:40])
				}
				return
			}
			if !strings.Contains(strings.Join(r.Failures, "; "), tt.fail) || !strings.Contains(md, tt.fail) {
				t.Errorf("failures %q, want one with %q in the report", r.Failures, tt.fail)
			}
		})
	}
}
