package auth

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// pattern matches full method names: exactly, or by prefix.
type pattern struct {
	s      string
	prefix bool
}

// parsePattern reads "/pkg.Service/Method", a prefix ending in "*"
// ("/pkg.Service/*", "/pkg.*"), or "*".
func parsePattern(s string) (pattern, error) {
	if s == "*" {
		return pattern{prefix: true}, nil
	}
	if !strings.HasPrefix(s, "/") {
		return pattern{}, fmt.Errorf("%q does not start with \"/\" and is not \"*\"", s)
	}
	if i := strings.IndexByte(s, '*'); i >= 0 {
		if i != len(s)-1 {
			return pattern{}, fmt.Errorf("%q has a \"*\" before its end", s)
		}
		return pattern{s: s[:i], prefix: true}, nil
	}
	svc, method, ok := strings.Cut(s[1:], "/")
	if !ok || svc == "" || method == "" || strings.Contains(method, "/") {
		return pattern{}, fmt.Errorf("%q is not a full method \"/package.Service/Method\"", s)
	}
	return pattern{s: s}, nil
}

func (p pattern) match(method string) bool {
	if p.prefix {
		return strings.HasPrefix(method, p.s)
	}
	return method == p.s
}

// rule is a compiled [Rule].
type rule struct {
	patterns  []pattern
	action    Action
	providers []*provider // never empty
	claims    []requiredClaim
}

// requiredClaim is one entry of [Rule.Claims].
type requiredClaim struct {
	name, value string
}

func (r *rule) match(method string) bool {
	for _, p := range r.patterns {
		if p.match(method) {
			return true
		}
	}
	return false
}

// compileRule compiles a validated rule.
func compileRule(r Rule, byName map[string]*provider, all []*provider) (rule, error) {
	c := rule{action: r.Action, providers: all}
	if c.action == "" {
		c.action = Require
	}
	for _, m := range r.Methods {
		p, err := parsePattern(m)
		if err != nil {
			return rule{}, err
		}
		c.patterns = append(c.patterns, p)
	}
	if len(r.Providers) > 0 {
		c.providers = nil
		for _, name := range r.Providers {
			p, ok := byName[name]
			if !ok {
				return rule{}, fmt.Errorf("no provider %q", name)
			}
			if !slices.Contains(c.providers, p) {
				c.providers = append(c.providers, p)
			}
		}
	}
	for _, name := range sortedKeys(r.Claims) {
		c.claims = append(c.claims, requiredClaim{name: name, value: r.Claims[name]})
	}
	if len(c.providers) == 0 {
		return rule{}, errors.New("no provider")
	}
	return c, nil
}

// missingClaim returns the first required claim that claims lack.
func (r *rule) missingClaim(claims map[string]any) (string, bool) {
	for _, c := range r.claims {
		if !hasValue(claims[c.name], c.value) {
			return c.name, true
		}
	}
	return "", false
}

// hasValue reports whether a claim holds want: equal to it, a
// space-separated word of it, or an element of it.
func hasValue(claim any, want string) bool {
	switch v := claim.(type) {
	case string:
		if v == want {
			return true
		}
		for w := range strings.FieldsSeq(v) {
			if w == want {
				return true
			}
		}
		return false
	case []any:
		for _, e := range v {
			if s, ok := scalarText(e); ok && s == want {
				return true
			}
		}
		return false
	}
	s, ok := scalarText(claim)
	return ok && s == want
}

// scalarText formats a JSON string, number or boolean.
func scalarText(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case bool:
		return strconv.FormatBool(v), true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	}
	return "", false
}

// claimText formats a claim to forward: a scalar, or a list of scalars
// joined with ",".
func claimText(v any) (string, bool) {
	list, ok := v.([]any)
	if !ok {
		return scalarText(v)
	}
	parts := make([]string, 0, len(list))
	for _, e := range list {
		s, ok := scalarText(e)
		if !ok {
			return "", false
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ","), len(parts) > 0
}

// allows reports whether the rule accepts tokens of p.
func (r *rule) allows(p *provider) bool {
	return slices.Contains(r.providers, p)
}
