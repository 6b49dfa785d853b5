package fault

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Name is the filter's name in config files, logs and errors.
const Name = "fault"

// Request headers that choose faults when [Config.HeaderControl] is set.
const (
	// DelayHeader holds the delay of the call, e.g. "250ms".
	DelayHeader = pipeline.InternalPrefix + "fault-delay"
	// AbortHeader holds the code to abort the call with, e.g.
	// "UNAVAILABLE".
	AbortHeader = pipeline.InternalPrefix + "fault-abort"
)

// DefaultAbortMessage is the status message of an abort whose config sets
// none.
const DefaultAbortMessage = "fault: injected fault"

func init() {
	pipeline.Register(pipeline.Module{Name: Name, New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config is the fault filter's configuration. At least one of delay,
// abort and header_control is required.
//
// In a config file:
//
//	filters:
//	  - fault:
//	      delay: {duration: 2s, percent: 10}
//	      abort: {code: UNAVAILABLE, message: "injected", percent: 5}
type Config struct {
	// Delay holds calls before they go upstream.
	Delay *Delay `yaml:"delay"`
	// Abort answers calls with an error instead of sending them upstream.
	Abort *Abort `yaml:"abort"`
	// HeaderControl faults only the calls that ask for it with the
	// x-manifold-fault-delay and x-manifold-fault-abort request headers,
	// whose values replace delay.duration and abort.code.
	HeaderControl bool `yaml:"header_control"`
}

// Delay is the delay fault.
type Delay struct {
	// Duration is how long a delayed call waits, e.g. "500ms". Required
	// and positive, unless header_control (then the header says).
	Duration time.Duration `yaml:"duration"`
	// Percent of the calls that are delayed, 0 to 100; fractions allowed.
	// Default 100.
	Percent *float64 `yaml:"percent"`
}

// Abort is the abort fault.
type Abort struct {
	// Code is the status code of an aborted call, by name
	// ("UNAVAILABLE", "resource_exhausted", "Unavailable") or number
	// ("14"); never OK. Required unless header_control (then the header
	// says).
	Code string `yaml:"code"`
	// Message is the status message of an aborted call. Default "fault:
	// injected fault".
	Message string `yaml:"message"`
	// Percent of the calls that are aborted, 0 to 100; fractions allowed.
	// Default 100.
	Percent *float64 `yaml:"percent"`
}

// Validate reports every problem with c, naming the fields by their yaml
// names.
func (c Config) Validate() error {
	var errs []error
	if c.Delay == nil && c.Abort == nil && !c.HeaderControl {
		errs = append(errs, errors.New("one of delay, abort and header_control is required"))
	}
	if d := c.Delay; d != nil {
		switch {
		case d.Duration < 0:
			errs = append(errs, fmt.Errorf("delay.duration: must be positive, got %v", d.Duration))
		case d.Duration == 0 && !c.HeaderControl:
			errs = append(errs, errors.New("delay.duration: required (or header_control)"))
		}
		if err := validPercent(d.Percent); err != nil {
			errs = append(errs, fmt.Errorf("delay.percent: %w", err))
		}
	}
	if a := c.Abort; a != nil {
		switch {
		case a.Code == "" && !c.HeaderControl:
			errs = append(errs, errors.New("abort.code: required (or header_control)"))
		case a.Code != "":
			if _, err := parseCode(a.Code); err != nil {
				errs = append(errs, fmt.Errorf("abort.code: %w", err))
			}
		}
		if err := validPercent(a.Percent); err != nil {
			errs = append(errs, fmt.Errorf("abort.percent: %w", err))
		}
	}
	return errors.Join(errs...)
}

func validPercent(p *float64) error {
	if p == nil {
		return nil
	}
	if math.IsNaN(*p) || *p < 0 || *p > 100 {
		return fmt.Errorf("must be between 0 and 100, got %v", *p)
	}
	return nil
}

// parseCode reads a status code by name, in the spellings of
// [codes.Code.String], of the gRPC spec (UNAVAILABLE, CANCELLED) and of
// the yaml "NOT_FOUND" style, or by number. OK is refused.
func parseCode(s string) (codes.Code, error) {
	var c codes.Code
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		c = codes.Code(n)
		if c > codes.Unauthenticated {
			return 0, fmt.Errorf("%q is not a gRPC status code (0 to 16)", s)
		}
	} else {
		key := strings.ToUpper(strings.ReplaceAll(s, "_", ""))
		var ok bool
		if c, ok = codeNames[key]; !ok {
			return 0, fmt.Errorf("%q is not a gRPC status code name, like UNAVAILABLE", s)
		}
	}
	if c == codes.OK {
		return 0, errors.New("OK is not an error")
	}
	return c, nil
}

// codeNames maps upper-case code names without underscores to codes.
var codeNames = func() map[string]codes.Code {
	m := map[string]codes.Code{"CANCELLED": codes.Canceled}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		m[strings.ToUpper(c.String())] = c
	}
	return m
}()

// Build makes the filter. It implements [pipeline.FilterConfig].
func (c Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	return New(c)
}

var (
	_ pipeline.FilterConfig = Config{}
	_ pipeline.FilterConfig = (*Config)(nil)
)
