package methodkind

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Pattern is one config rule: methods that Match are of Kind.
//
// Match is one of:
//
//   - "/pkg.Svc/Method": exactly that method;
//   - "/pkg.Svc/*": any method of the service;
//   - "/pkg.*": any method whose full name starts with "/pkg." (any text
//     before a final "*" is a prefix);
//   - "*": every method.
type Pattern struct {
	// Match selects methods by full name, e.g. "/pkg.Svc/*".
	Match string `yaml:"match" json:"match"`
	// Kind of the matching methods: "unary", "client_streaming",
	// "server_streaming" or "bidi_streaming" ("bidi").
	Kind Kind `yaml:"kind" json:"kind"`
}

// matches reports whether fullMethod matches p.Match.
func (p Pattern) matches(fullMethod string) bool {
	if prefix, ok := strings.CutSuffix(p.Match, "*"); ok {
		return strings.HasPrefix(fullMethod, prefix)
	}
	return p.Match == fullMethod
}

// validate checks one pattern.
func (p Pattern) validate() error {
	m := p.Match
	switch {
	case m == "":
		return errors.New("match is empty")
	case m == "*":
	case !strings.HasPrefix(m, "/"):
		return fmt.Errorf("match %q must start with \"/\" or be \"*\"", m)
	case strings.Contains(strings.TrimSuffix(m, "*"), "*"):
		return fmt.Errorf("match %q: \"*\" may only end a pattern", m)
	case !strings.HasSuffix(m, "*"):
		svc, method, ok := strings.Cut(m[1:], "/")
		if !ok || svc == "" || method == "" || strings.Contains(method, "/") {
			return fmt.Errorf("match %q is not a full method \"/pkg.Service/Method\"", m)
		}
	}
	if p.Kind == Unknown || int(p.Kind) >= len(kindNames) {
		return fmt.Errorf("match %q: kind must be unary, client_streaming, server_streaming or bidi_streaming, not %s", m, p.Kind)
	}
	return nil
}

// Patterns is an ordered list of config rules; the first pattern that matches
// a method gives its kind. Patterns is a [Resolver]; it never returns an
// error, and methods that no pattern matches are [Unknown].
//
// Call [Patterns.Validate] when loading config: Kind does not check patterns.
// A Patterns value must not be changed while Kind may run; then it is safe
// for concurrent use.
type Patterns []Pattern

// Validate reports every bad pattern or [Unknown] kind, each error naming
// patterns[i].
func (p Patterns) Validate() error {
	var errs []error
	for i, pat := range p {
		if err := pat.validate(); err != nil {
			errs = append(errs, fmt.Errorf("methodkind: patterns[%d]: %w", i, err))
		}
	}
	return errors.Join(errs...)
}

// Kind returns the kind of the first pattern that matches fullMethod, or
// [Unknown] and a nil error.
func (p Patterns) Kind(_ context.Context, fullMethod string) (Kind, error) {
	for _, pat := range p {
		if pat.matches(fullMethod) {
			return pat.Kind, nil
		}
	}
	return Unknown, nil
}

func (Patterns) source() string { return "config patterns" }

var (
	_ Resolver = Patterns(nil)
	_ sourcer  = Patterns(nil)
)
