package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Name is the filter's name in config files, logs and errors.
const Name = "rate_limit"

// DefaultMaxKeys is the number of per-key buckets a filter keeps when
// [Config.MaxKeys] is not set.
const DefaultMaxKeys = 100_000

func init() {
	pipeline.Register(pipeline.Module{Name: Name, New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config is the rate limit's configuration. Rate and burst are required.
//
// In a config file:
//
//	filters:
//	  - rate_limit:
//	      rate: 50        # tokens per second
//	      burst: 100
//	      key: claim:sub
type Config struct {
	// Rate is how many tokens each bucket gains per second, e.g. 10, or
	// 0.5 for one call every two seconds. Required, above zero.
	Rate float64 `yaml:"rate"`
	// Burst is the size of each bucket: how many calls may pass at once
	// after a quiet period. A new bucket starts full. Required, at least 1.
	Burst int `yaml:"burst"`
	// Key chooses which calls share a bucket: "" or "none" (one bucket for
	// the filter), "peer" (per client IP address), "claim:NAME" (per
	// value of a verified claim) or "header:NAME" (per first value of a
	// request header). Calls without a value share one extra bucket.
	Key string `yaml:"key"`
	// MaxKeys bounds the number of per-key buckets kept in memory; the
	// least recently used goes first. Default 100000. Ignored for key
	// "none".
	MaxKeys int `yaml:"max_keys"`
}

// Validate reports every problem with c, naming the fields by their yaml
// names.
func (c Config) Validate() error {
	var errs []error
	if !(c.Rate > 0) || math.IsInf(c.Rate, 0) {
		errs = append(errs, fmt.Errorf("rate: must be a number of tokens per second above 0, got %v", c.Rate))
	}
	if c.Burst < 1 {
		errs = append(errs, fmt.Errorf("burst: must be at least 1, got %d", c.Burst))
	}
	if _, err := parseKey(c.Key); err != nil {
		errs = append(errs, fmt.Errorf("key: %w", err))
	}
	if c.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max_keys: must not be negative, got %d", c.MaxKeys))
	}
	return errors.Join(errs...)
}

// Build makes the filter. It implements [pipeline.FilterConfig].
func (c Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	return New(c)
}

// keyKind is the source of a bucket's key.
type keyKind int

const (
	keyNone keyKind = iota
	keyPeer
	keyClaim
	keyHeader
)

// keySpec is a parsed [Config.Key].
type keySpec struct {
	kind keyKind
	name string // claim or header name
}

// parseKey parses a [Config.Key].
func parseKey(s string) (keySpec, error) {
	switch s {
	case "", "none":
		return keySpec{kind: keyNone}, nil
	case "peer":
		return keySpec{kind: keyPeer}, nil
	}
	kind, name, ok := strings.Cut(s, ":")
	if !ok {
		return keySpec{}, fmt.Errorf("%q is not one of none, peer, claim:NAME, header:NAME", s)
	}
	switch kind {
	case "claim":
		if name == "" {
			return keySpec{}, errors.New("claim: needs a claim name, like claim:sub")
		}
		return keySpec{kind: keyClaim, name: name}, nil
	case "header":
		lk := strings.ToLower(name)
		if lk == "" {
			return keySpec{}, errors.New("header: needs a header name, like header:x-tenant")
		}
		if !pipeline.ValidPair(lk, "") {
			return keySpec{}, fmt.Errorf("%q is not a metadata key (letters, digits and -_. only)", name)
		}
		return keySpec{kind: keyHeader, name: lk}, nil
	}
	return keySpec{}, fmt.Errorf("%q is not one of none, peer, claim:NAME, header:NAME", s)
}

var (
	_ pipeline.FilterConfig = Config{}
	_ pipeline.FilterConfig = (*Config)(nil)
)
