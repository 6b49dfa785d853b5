package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"
)

// settings are the command-line flags.
type settings struct {
	Repeats     int           `json:"repeats"`
	Duration    time.Duration `json:"duration_ns"`
	Warmup      time.Duration `json:"warmup_ns"`
	InFlight    int           `json:"in_flight"`
	IdleStreams int           `json:"idle_streams"`
	StreamMsgs  int           `json:"stream_msgs"`
	Scenarios   []string      `json:"scenarios"`
	Proxies     []string      `json:"proxies"`
	NoPin       bool          `json:"no_pin"`
	ManifoldEnv []string      `json:"manifold_env,omitempty"`
	NoKinds     bool          `json:"no_kinds,omitempty"`
	Filters     []string      `json:"filters"`
	JSON        string        `json:"-"`
}

func parseSettings(args []string) (*settings, error) {
	s := &settings{}
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.IntVar(&s.Repeats, "repeats", 5, "repeats of every scenario; the table shows medians and the min–max spread")
	fs.DurationVar(&s.Duration, "duration", 3*time.Second, "measured time of one run")
	fs.DurationVar(&s.Warmup, "warmup", 500*time.Millisecond, "unmeasured load before each run's measurement starts")
	fs.IntVar(&s.InFlight, "inflight", 32, "calls (or ping-pong streams) in flight in the concurrent scenarios")
	fs.IntVar(&s.IdleStreams, "idle-streams", 10000, "streams held open in the idle scenario")
	fs.IntVar(&s.StreamMsgs, "stream-msgs", 10, "messages each member sends per server-streaming call")
	scenarios := fs.String("scenarios", strings.Join(scenarioNames(), ","), "comma-separated scenarios to run")
	proxies := fs.String("proxies", "floor,manifold,mwitkow,manifold-config,manifold-filters", "comma-separated proxies to compare with direct calls (manifold-config: Manifold in config mode, empty chain; manifold-filters: the same with auth, logging and tracing; both one-to-one scenarios only)")
	fs.BoolVar(&s.NoPin, "no-pin", false, "do not pin processes to cores even when taskset exists")
	manifoldEnv := fs.String("manifold-env", "", "comma-separated `KEY=VALUE` pairs added to Manifold's environment only (e.g. GOGC=100), to measure a runtime setting")
	fs.BoolVar(&s.NoKinds, "no-kinds", false, "do not give one-to-one Manifold the BenchmarkService's protoset, so that every call takes the general path (two goroutines per call) instead of the single-request path for unary calls")
	filters := fs.String("filters", strings.Join(filterNames, ","), "comma-separated filters of manifold-filters' chain, a subset of "+strings.Join(filterNames, ", ")+", to measure one at a time")
	fs.StringVar(&s.JSON, "json", "", "also write every run and the summary as JSON to this `file`")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./load [flags]   (from the bench/ directory)\n\n"+
			"Starts a BenchmarkService backend, Manifold (the real binary, quick mode), a\n"+
			"minimal grpc-go pass-through proxy (floor) and mwitkow/grpc-proxy as separate\n"+
			"processes, drives each with one closed-loop client over one connection and\n"+
			"prints a markdown table of the results.\n\nScenarios: %s\n\nFlags:\n", strings.Join(scenarioNames(), ", "))
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, kv := range splitList(*manifoldEnv) {
		if !strings.Contains(kv, "=") {
			return nil, fmt.Errorf("-manifold-env: %q is not KEY=VALUE", kv)
		}
		s.ManifoldEnv = append(s.ManifoldEnv, kv)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if s.Repeats < 1 || s.Duration <= 0 || s.Warmup < 0 || s.InFlight < 1 || s.IdleStreams < 1 || s.StreamMsgs < 1 {
		return nil, errors.New("-repeats, -duration, -inflight, -idle-streams and -stream-msgs must be positive")
	}
	known := map[string]bool{}
	for _, n := range scenarioNames() {
		known[n] = true
	}
	for _, n := range splitList(*scenarios) {
		if !known[n] {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q", n)
		}
		s.Scenarios = append(s.Scenarios, n)
	}
	for _, p := range splitList(*proxies) {
		switch p {
		case proxyFloor, proxyManifold, proxyMwitkow, proxyConfig, proxyFilters:
			s.Proxies = append(s.Proxies, p)
		default:
			return nil, fmt.Errorf("-proxies: unknown proxy %q (floor, manifold, mwitkow, manifold-config, manifold-filters)", p)
		}
	}
	for _, f := range splitList(*filters) {
		if !slices.Contains(filterNames, f) {
			return nil, fmt.Errorf("-filters: unknown filter %q (%s)", f, strings.Join(filterNames, ", "))
		}
		if !slices.Contains(s.Filters, f) {
			s.Filters = append(s.Filters, f)
		}
	}
	if len(s.Filters) == 0 {
		return nil, errors.New("-filters: name at least one filter")
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func main() {
	s, err := parseSettings(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(2)
	}
	os.Exit(run(s))
}

// run builds the pieces (in the first process), pins itself (by running
// itself again under taskset), then measures. It returns the exit code.
func run(s *settings) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	bin := os.Getenv(envBuilt)
	if bin == "" {
		var err error
		bin, err = buildAll(ctx, s)
		if err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			return 1
		}
		if err := pinSelf(s, bin); err != nil {
			// Only returns when pinning is off or impossible.
			logf("not pinning: %v", err)
		}
	}
	defer os.RemoveAll(bin)

	b := &bench{s: s, bin: bin, procs: &procSet{}}
	defer b.procs.stopAll()
	res, err := b.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		if ctx.Err() != nil {
			return 130
		}
		return 1
	}
	fmt.Print(res.markdown())
	if s.JSON != "" {
		if err := res.writeJSON(s.JSON); err != nil {
			fmt.Fprintln(os.Stderr, "load:", err)
			return 1
		}
		logf("wrote %s", s.JSON)
	}
	return 0
}

// logf prints progress to standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
