package fanout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/methodkind"
)

// Defaults of [Config].
const (
	DefaultNodesKey        = "nodes"
	DefaultMaxTargets      = 256
	DefaultMaxResponseSize = 64 << 20
	DefaultReserveFraction = 0.10
	DefaultMinReserve      = 20 * time.Millisecond
	DefaultQueueSize       = 64
	DefaultHeaderWait      = 200 * time.Millisecond
)

// Config tunes a fan-out terminal. The zero value takes every default.
type Config struct {
	// Name names the group in logs, metrics and spans. Default "fanout".
	Name string `yaml:"name"`
	// NodesKey is the request header that names the targets of a call:
	// comma-separated member names, or repeated values. Default "nodes".
	NodesKey string `yaml:"nodes_key"`
	// MaxTargets is the most targets one call may have. Default 256. A
	// call that names more in the nodes header ends with INVALID_ARGUMENT.
	// A call that names none goes to every member; when the group has more
	// than MaxTargets, it ends with INVALID_ARGUMENT for a listed group
	// (its size is configuration: clients must name targets) and with
	// UNAVAILABLE for a group whose resolver currently returns that many.
	MaxTargets int `yaml:"max_targets"`
	// MaxResponseSize caps the merged response of a unary or
	// client-streaming call, in bytes; past it the call ends with
	// RESOURCE_EXHAUSTED. Default 64 MiB.
	MaxResponseSize int `yaml:"max_response_size"`
	// ReserveFraction of the remaining time before the client's deadline is
	// kept back from every upstream, so that partial answers still reach
	// the client when some upstream hangs. Default 0.10.
	ReserveFraction float64 `yaml:"reserve_fraction"`
	// MinReserve is the least time kept back. Default 20ms.
	MinReserve time.Duration `yaml:"min_reserve"`
	// UpstreamTimeout, when set, bounds each upstream call on its own.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// QueueSize is how many request frames may wait for one upstream of a
	// streaming call before the client is slowed down. Default 64.
	QueueSize int `yaml:"queue_size"`
	// HeaderWait is how long a ready response message may wait for the
	// headers of upstreams still opening. Default 200ms.
	HeaderWait time.Duration `yaml:"header_wait"`
	// Policy decides when the call is answered: "all" (default), "first",
	// or "quorum:N".
	Policy Policy `yaml:"policy"`
	// FailFast turns any upstream's error into the call's status instead of
	// an error item.
	FailFast bool `yaml:"fail_fast"`
	// Layout places the items and the metadata spliced into them.
	Layout metadata.Layout `yaml:"layout"`
	// Kinds tells unary from streaming methods. Default: server reflection
	// of the members.
	Kinds methodkind.Resolver `yaml:"-"`
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "fanout"
	}
	if c.NodesKey == "" {
		c.NodesKey = DefaultNodesKey
	}
	if c.MaxTargets == 0 {
		c.MaxTargets = DefaultMaxTargets
	}
	if c.MaxResponseSize == 0 {
		c.MaxResponseSize = DefaultMaxResponseSize
	}
	if c.ReserveFraction == 0 {
		c.ReserveFraction = DefaultReserveFraction
	}
	if c.MinReserve == 0 {
		c.MinReserve = DefaultMinReserve
	}
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.HeaderWait == 0 {
		c.HeaderWait = DefaultHeaderWait
	}
	c.Layout = c.Layout.WithDefaults()
	return c
}

// Validate reports every problem with c, naming the fields.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.NodesKey != strings.ToLower(c.NodesKey) {
		errs = append(errs, fmt.Errorf("nodes_key: %q must be lowercase", c.NodesKey))
	}
	if c.MaxTargets < 0 {
		errs = append(errs, errors.New("max_targets: must not be negative"))
	}
	if c.MaxResponseSize < 0 {
		errs = append(errs, errors.New("max_response_size: must not be negative"))
	}
	if c.ReserveFraction < 0 || c.ReserveFraction >= 1 {
		errs = append(errs, fmt.Errorf("reserve_fraction: %v is not in [0, 1)", c.ReserveFraction))
	}
	if c.MinReserve < 0 || c.UpstreamTimeout < 0 || c.HeaderWait < 0 {
		errs = append(errs, errors.New("min_reserve, upstream_timeout, header_wait: must not be negative"))
	}
	if c.QueueSize < 0 {
		errs = append(errs, errors.New("queue_size: must not be negative"))
	}
	if err := c.Policy.validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Layout.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("layout: %w", err))
	}
	return errors.Join(errs...)
}

// Mode is how a policy decides that a call is answered.
type Mode uint8

// The policy modes.
const (
	// All waits for every target.
	All Mode = iota
	// First answers with the first target that succeeds.
	First
	// Quorum answers once Policy.Quorum targets succeeded.
	Quorum
)

// Policy is when a fan-out call is answered. Its text form is "all",
// "first" or "quorum:N".
type Policy struct {
	Mode   Mode
	Quorum int
}

// ParsePolicy reads "all", "first" or "quorum:N" (N ≥ 1).
func ParsePolicy(s string) (Policy, error) {
	switch {
	case s == "" || s == "all":
		return Policy{Mode: All}, nil
	case s == "first":
		return Policy{Mode: First}, nil
	case strings.HasPrefix(s, "quorum:"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "quorum:"))
		if err != nil || n < 1 {
			return Policy{}, fmt.Errorf("policy: %q: quorum needs a count of at least 1, like quorum:2", s)
		}
		return Policy{Mode: Quorum, Quorum: n}, nil
	}
	return Policy{}, fmt.Errorf("policy: %q is not all, first or quorum:N", s)
}

// String returns the text form.
func (p Policy) String() string {
	switch p.Mode {
	case First:
		return "first"
	case Quorum:
		return "quorum:" + strconv.Itoa(p.Quorum)
	}
	return "all"
}

// MarshalText implements [encoding.TextMarshaler].
func (p Policy) MarshalText() ([]byte, error) { return []byte(p.String()), nil }

// UnmarshalText implements [encoding.TextUnmarshaler].
func (p *Policy) UnmarshalText(b []byte) error {
	q, err := ParsePolicy(string(b))
	if err != nil {
		return err
	}
	*p = q
	return nil
}

func (p Policy) validate() error {
	if p.Mode > Quorum || (p.Mode == Quorum && p.Quorum < 1) {
		return fmt.Errorf("policy: %v is invalid", p)
	}
	return nil
}
