package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

// settings are the command-line flags.
type settings struct {
	Duration    time.Duration `json:"duration_ns"`
	Concurrency int           `json:"concurrency"`
	Rate        float64       `json:"rate"`
	Conns       int           `json:"conns"`
	Seed        uint64        `json:"seed"`
	Sample      time.Duration `json:"sample_ns"`
	TableEvery  time.Duration `json:"table_every_ns"`
	KillEvery   time.Duration `json:"kill_every_ns"`
	DownMin     time.Duration `json:"down_min_ns"`
	DownMax     time.Duration `json:"down_max_ns"`
	ChurnEvery  time.Duration `json:"churn_every_ns"`
	Tolerance   float64       `json:"plateau_tolerance"`
	JSON        string        `json:"-"`
}

func parseSettings(args []string) (*settings, error) {
	s := &settings{}
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.DurationVar(&s.Duration, "duration", 10*time.Minute, "how long the load runs")
	fs.IntVar(&s.Concurrency, "concurrency", 32, "workers, each making one call at a time")
	fs.Float64Var(&s.Rate, "rate", 150, "calls started per second by all workers together, at most (0: as fast as the workers go)")
	fs.IntVar(&s.Conns, "conns", 4, "client connections to the proxy, shared by the workers")
	fs.Uint64Var(&s.Seed, "seed", 0, "seed of the calls' and faults' random choices (0: from the clock; the report shows the one used)")
	fs.DurationVar(&s.Sample, "sample", 5*time.Second, "how often the proxy's goroutines, FDs and RSS are read")
	fs.DurationVar(&s.TableEvery, "table-every", 30*time.Second, "time span of one row of the report's time series")
	fs.DurationVar(&s.KillEvery, "kill-every", 15*time.Second, "mean time between backend kills (each time uniform in 0.5–1.5×; 0: no kills)")
	fs.DurationVar(&s.DownMin, "down-min", 2*time.Second, "shortest time a killed backend stays down")
	fs.DurationVar(&s.DownMax, "down-max", 6*time.Second, "longest time a killed backend stays down")
	fs.DurationVar(&s.ChurnEvery, "churn-every", 20*time.Second, "how often one client connection is replaced by a new one (0: never)")
	fs.Float64Var(&s.Tolerance, "plateau-tolerance", 0.2, "growth of goroutines and RSS allowed from the middle third's maximum to the last third's, as a fraction, on top of a fixed slack (FDs get the slack only)")
	fs.StringVar(&s.JSON, "json", "", "also write the results as JSON to this `file`")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: go run ./soak [flags]   (from the bench/ directory)

Builds the real Manifold binary and runs it in config mode in front of five
in-process backends (a one-to-one cluster of two, a fan-out group of three),
drives it with mixed one-to-one and fan-out calls while killing and
restarting backends, reading slowly, cancelling and letting deadlines
expire, checks by sequence numbers that no message was lost, and watches
the proxy's goroutines, open files and RSS. Exit status 1 when a message
was lost, an answer was wrong, the proxy died, or a resource kept growing.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	switch {
	case s.Duration <= 0 || s.Concurrency < 1 || s.Conns < 1 || s.Sample <= 0 || s.TableEvery <= 0:
		return nil, errors.New("-duration, -concurrency, -conns, -sample and -table-every must be positive")
	case s.Rate < 0 || s.KillEvery < 0 || s.ChurnEvery < 0 || s.Tolerance < 0:
		return nil, errors.New("-rate, -kill-every, -churn-every and -plateau-tolerance must not be negative")
	case s.DownMin <= 0 || s.DownMax < s.DownMin:
		return nil, errors.New("need 0 < -down-min <= -down-max")
	}
	return s, nil
}

func main() {
	s, err := parseSettings(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "soak:", err)
		os.Exit(2)
	}
	os.Exit(run(s))
}

// logf prints progress to standard error.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}
