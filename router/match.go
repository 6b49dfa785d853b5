package router

import (
	"fmt"
	"strings"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Match selects calls. Every field that is set must match; an empty Match
// matches every call.
type Match struct {
	// Method is a full method name, "/pkg.Service/Method".
	Method string `yaml:"method"`
	// Service is a fully qualified service name, "pkg.Service".
	Service string `yaml:"service"`
	// Prefix matches the start of the full method name, e.g. "/pkg.".
	Prefix string `yaml:"prefix"`
	// Authority is the :authority the client called, matched exactly
	// (case-insensitive), or "*.example.com" for any subdomain.
	Authority string `yaml:"authority"`
	// Metadata maps request header keys to required values; a key matches
	// when any of its values equals the one given. The value "*" only
	// requires the key to be present. Matching sees the outbound headers
	// after the global chain's request hooks: hop-by-hop keys (user-agent,
	// content-type, …) are gone, and x-manifold-* keys exist only if a
	// global filter set them (clients cannot), so such a key can steer
	// routing safely.
	Metadata map[string]string `yaml:"metadata"`
}

// Validate reports a malformed match.
func (m *Match) Validate() error {
	if m.Method != "" && (!strings.HasPrefix(m.Method, "/") || strings.Count(m.Method, "/") != 2) {
		return fmt.Errorf("method: %q is not a full method name like /pkg.Service/Method", m.Method)
	}
	if strings.Contains(m.Service, "/") {
		return fmt.Errorf("service: %q must be a service name like pkg.Service, without slashes", m.Service)
	}
	if strings.Contains(m.Authority, "*") && (!strings.HasPrefix(m.Authority, "*.") || len(m.Authority) < 3 || strings.Contains(m.Authority[1:], "*")) {
		return fmt.Errorf("authority: %q: a wildcard is only allowed as a leading \"*.\", as in *.example.com", m.Authority)
	}
	if strings.HasPrefix(m.Authority, "*.") && strings.Contains(m.Authority, ":") {
		return fmt.Errorf("authority: %q: a wildcard matches host names, whatever the port; leave the port out", m.Authority)
	}
	for k := range m.Metadata {
		if k == "" || k != strings.ToLower(k) {
			return fmt.Errorf("metadata: key %q must be lowercase and non-empty", k)
		}
		if pipeline.IsHopByHop(k) {
			return fmt.Errorf("metadata: key %q is a hop-by-hop header, removed before routing, so it can never match", k)
		}
	}
	return nil
}

// Matches reports whether call is selected by m.
func (m *Match) Matches(call *pipeline.Call) bool {
	if m.Method != "" && call.Method != m.Method {
		return false
	}
	if m.Service != "" && serviceOf(call.Method) != m.Service {
		return false
	}
	if m.Prefix != "" && !strings.HasPrefix(call.Method, m.Prefix) {
		return false
	}
	if m.Authority != "" && !matchAuthority(m.Authority, call.Authority) {
		return false
	}
	for k, want := range m.Metadata {
		vals := call.Header.Get(k)
		if len(vals) == 0 {
			return false
		}
		if want == "*" {
			continue
		}
		found := false
		for _, v := range vals {
			if v == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// serviceOf returns "pkg.Service" for "/pkg.Service/Method".
func serviceOf(method string) string {
	method = strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[:i]
	}
	return ""
}

func matchAuthority(pattern, authority string) bool {
	host := strings.ToLower(authority)
	// Drop the port: the text after the last colon, unless that colon is
	// inside an IPv6 literal ("[::1]").
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	pattern = strings.ToLower(pattern)
	if strings.HasPrefix(pattern, "*.") {
		return strings.HasSuffix(host, pattern[1:]) && len(host) > len(pattern)-1
	}
	return host == pattern || strings.ToLower(authority) == pattern
}
