package config

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/discovery"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/server"
)

// validate checks what decoding cannot: required fields, references between
// sections, files that must exist, and each filter's own Validate.
func (d *decoder) validate(c *Config) {
	at := func(path, format string, args ...any) {
		d.errorf(d.nearest(path), path, format, args...)
	}
	if len(c.Listeners) == 0 {
		at("listeners", "at least one listener is required")
	}
	addrs := map[string]bool{}
	for i, l := range c.Listeners {
		p := fmt.Sprintf("listeners[%d]", i)
		if l.Address == "" {
			at(p+".address", "required")
		} else if addrs[l.Address] {
			at(p+".address", "%q is used twice", l.Address)
		}
		addrs[l.Address] = true
		if l.MaxMessageSize < 0 {
			at(p+".max_message_size", "must not be negative")
		}
		if l.MaxHeaderListSize > 0 && l.MaxHeaderListSize < 1024 {
			at(p+".max_header_list_size", "%d bytes is too small for gRPC's own headers; at least 1024", l.MaxHeaderListSize)
		}
		if l.TLS != nil {
			d.files(p+".tls", map[string]string{"cert_file": l.TLS.CertFile, "key_file": l.TLS.KeyFile}, true)
			d.files(p+".tls", map[string]string{"client_ca_file": l.TLS.ClientCAFile}, false)
			if l.TLS.MinVersion != "" {
				if _, err := server.ParseTLSVersion(l.TLS.MinVersion); err != nil {
					at(p+".tls.min_version", "%v", err)
				}
			}
			switch l.TLS.ClientAuth {
			case "", "require", "optional":
				if l.TLS.ClientAuth != "" && l.TLS.ClientCAFile == "" {
					at(p+".tls.client_auth", "needs client_ca_file")
				}
			default:
				at(p+".tls.client_auth", "%q is not require or optional", l.TLS.ClientAuth)
			}
		}
	}
	if c.DrainTimeout < 0 {
		at("drain_timeout", "must not be negative")
	}
	if c.Log != nil {
		var level slog.Level
		if c.Log.Level != "" && level.UnmarshalText([]byte(c.Log.Level)) != nil {
			at("log.level", "%q is not debug, info, warn or error", c.Log.Level)
		}
		if c.Log.Format != "" && c.Log.Format != "text" && c.Log.Format != "json" {
			at("log.format", "%q is not text or json", c.Log.Format)
		}
	}
	for i, l := range c.Listeners {
		if k := l.Keepalive; k != nil && (k.Time < 0 || k.Timeout < 0 || k.MinTime < 0) {
			at(fmt.Sprintf("listeners[%d].keepalive", i), "durations must not be negative")
		}
	}
	clientKeepalive := func(path string, k *ClientKeepalive) {
		if k == nil {
			return
		}
		if k.Time != 0 && k.Time < 10*time.Second {
			at(path+".time", "must be at least 10s (grpc-go raises shorter values to 10s)")
		}
		if k.Timeout < 0 {
			at(path+".timeout", "must not be negative")
		}
	}
	for i, cl := range c.Clusters {
		clientKeepalive(fmt.Sprintf("clusters[%d].keepalive", i), cl.Keepalive)
	}
	for i, g := range c.Fanout {
		for j, m := range g.Members {
			clientKeepalive(fmt.Sprintf("fanout[%d].members[%d].keepalive", i, j), m.Keepalive)
		}
		clientKeepalive(fmt.Sprintf("fanout[%d].member.keepalive", i), g.Member.Keepalive)
	}

	clusters := map[string]bool{}
	for i, cl := range c.Clusters {
		p := fmt.Sprintf("clusters[%d]", i)
		if clusters[cl.Name] {
			at(p+".name", "%q is used twice", cl.Name)
		}
		clusters[cl.Name] = true
		cc := cluster.Config{Name: cl.Name, Target: cl.Target, Addresses: cl.Addresses, LoadBalancing: cl.LoadBalancing, ConnectTimeout: cl.ConnectTimeout, MaxMessageSize: cl.MaxMessageSize, CircuitBreakers: cl.CircuitBreakers, Retry: cl.Retry, RetryThrottling: cl.RetryThrottling, RetryBufferSize: cl.RetryBufferSize}
		if err := cc.Validate(); err != nil {
			d.locate(p, trimPrefix(err.Error(), fmt.Sprintf("cluster %q: ", cl.Name)))
		}
		d.clientTLS(p+".tls", cl.TLS)
		d.targetScheme(p+".target", cl.Target)
		c.Clusters[i].protoset = d.methodKinds(p, cl.Kinds, cl.Protoset)
	}

	groups := map[string]bool{}
	for i := range c.Fanout {
		g := &c.Fanout[i]
		p := fmt.Sprintf("fanout[%d]", i)
		if g.Name == "" {
			at(p+".name", "required")
		}
		if groups[g.Name] {
			at(p+".name", "%q is used twice", g.Name)
		}
		groups[g.Name] = true
		switch {
		case g.MembersFrom != "" && len(g.Members) > 0:
			at(p+".members_from", "exclusive with members")
		case g.MembersFrom != "":
			if err := discovery.Check(g.MembersFrom); err != nil {
				at(p+".members_from", "%v", err)
			}
			d.clientTLS(p+".member.tls", g.Member.TLS)
		case len(g.Members) == 0:
			at(p+".members", "at least one member is required, or members_from")
		}
		if g.Refresh < 0 {
			at(p+".refresh", "must not be negative")
		}
		names := map[string]bool{}
		for j, m := range g.Members {
			mp := fmt.Sprintf("%s.members[%d]", p, j)
			if m.Name == "" {
				at(mp+".name", "required")
			} else if names[m.Name] {
				at(mp+".name", "%q is used twice", m.Name)
			}
			names[m.Name] = true
			if m.Target == "" {
				at(mp+".target", "required")
			}
			d.targetScheme(mp+".target", m.Target)
			d.clientTLS(mp+".tls", m.TLS)
		}
		g.protoset = d.methodKinds(p, g.Kinds, g.Protoset)
		if err := g.fanoutConfig().Validate(); err != nil {
			for _, line := range strings.Split(err.Error(), "\n") {
				line = trimPrefix(line, "fanout: ")
				line = strings.Replace(line, "layout: metadata: ", "layout.", 1)
				line = strings.Replace(line, "policy: policy: ", "policy: ", 1)
				d.locate(p, line)
			}
		}
		if g.Policy.Mode == fanout.Quorum && g.MembersFrom == "" && g.Policy.Quorum > len(g.Members) {
			at(p+".policy", "quorum of %d can never be reached with %d members", g.Policy.Quorum, len(g.Members))
		}
		for j, m := range g.Members {
			if strings.ContainsAny(m.Name, ", \t") {
				at(fmt.Sprintf("%s.members[%d].name", p, j), "%q must not contain commas or spaces", m.Name)
			}
		}
	}

	d.chain("filters", c.Filters)
	if len(c.Routes) == 0 {
		at("routes", "at least one route is required")
	}
	routes := map[string]bool{}
	for i, r := range c.Routes {
		p := fmt.Sprintf("routes[%d]", i)
		if r.Name == "" {
			at(p+".name", "required")
		} else if routes[r.Name] {
			at(p+".name", "%q is used twice", r.Name)
		}
		routes[r.Name] = true
		if err := r.Match.Validate(); err != nil {
			d.locate(p+".match", err.Error())
		}
		switch {
		case r.Route == "" && r.Fanout == "":
			at(p, "one of route (a cluster) and fanout (a group) is required")
		case r.Route != "" && r.Fanout != "":
			at(p, "route and fanout are exclusive")
		case r.Route != "" && !clusters[r.Route]:
			at(p+".route", "no cluster named %q", r.Route)
		case r.Fanout != "" && !groups[r.Fanout]:
			at(p+".fanout", "no fan-out group named %q", r.Fanout)
		}
		d.chain(p+".filters", r.Filters)
	}
}

// chain validates each filter's config.
func (d *decoder) chain(path string, fs []Filter) {
	for i, f := range fs {
		if f.Config == nil {
			if f.Name == "" {
				p := fmt.Sprintf("%s[%d]", path, i)
				d.errorf(d.nearest(p), p, "empty filter entry; want a filter name with its config, like `- logging: {}`")
			}
			continue
		}
		if err := f.Config.Validate(); err != nil {
			d.locate(fmt.Sprintf("%s[%d].%s", path, i, f.Name), err.Error())
		}
	}
}

// files checks that the named files exist (required ones must be set).
func (d *decoder) files(path string, files map[string]string, required bool) {
	// In field-name order, so that the same file always gives the same
	// list of problems.
	for _, field := range slices.Sorted(maps.Keys(files)) {
		name := files[field]
		p := join(path, field)
		if name == "" {
			if required {
				d.errorf(d.nearest(p), p, "required")
			}
			continue
		}
		if _, err := os.Stat(name); err != nil {
			d.errorf(d.nearest(p), p, "%v", err)
		}
	}
}

// targetChecks are the checks a target scheme's package registered with
// [RegisterTargetCheck].
var (
	targetChecksMu sync.RWMutex
	targetChecks   = map[string]func() error{}
)

// RegisterTargetCheck makes config validation run check for every file
// with a cluster or member target of that scheme, so that a process that
// cannot use such targets (an xDS target without a bootstrap, say) fails
// at load time, naming the field, instead of failing every call. Packages
// that register a resolver call it in init.
func RegisterTargetCheck(scheme string, check func() error) {
	targetChecksMu.Lock()
	defer targetChecksMu.Unlock()
	targetChecks[scheme] = check
}

// targetScheme refuses a target URI whose scheme no resolver in this binary
// serves: grpc-go would read the whole URI as a DNS name and fail every
// call at run time instead. It also runs the scheme's registered check.
func (d *decoder) targetScheme(path, target string) {
	scheme, _, ok := strings.Cut(target, "://")
	if !ok {
		return
	}
	if resolver.Get(scheme) != nil {
		targetChecksMu.RLock()
		check := targetChecks[scheme]
		targetChecksMu.RUnlock()
		if check != nil {
			if err := check(); err != nil {
				d.errorf(d.nearest(path), path, "%v", err)
			}
		}
		return
	}
	hint := ""
	if scheme == "xds" {
		hint = " (build the binary with -tags xds, or import github.com/manifold-grpc/manifold/xds)"
	}
	d.errorf(d.nearest(path), path, "scheme %q: no resolver for it in this binary%s", scheme, hint)
}

// methodKinds checks the method-kind patterns and loads the protoset of
// the cluster or group at path. It returns the protoset, kept for Build,
// which would otherwise read the file again.
func (d *decoder) methodKinds(path string, kinds methodkind.Patterns, protoset string) *methodkind.Protoset {
	if err := kinds.Validate(); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			// "methodkind: patterns[0]: …" → fanout[i].kinds[0]: …
			d.locate(path, strings.Replace(trimPrefix(line, "methodkind: "), "patterns[", "kinds[", 1))
		}
	}
	if protoset == "" {
		return nil
	}
	ps, err := methodkind.LoadProtoset(protoset)
	if err != nil {
		d.errorf(d.nearest(path+".protoset"), path+".protoset", "%v", err)
	}
	return ps
}

func (d *decoder) clientTLS(path string, t *ClientTLS) {
	if t == nil {
		return
	}
	d.files(path, map[string]string{"ca_file": t.CAFile}, false)
	if (t.CertFile == "") != (t.KeyFile == "") {
		d.errorf(d.nearest(path), path, "cert_file and key_file go together")
	}
	d.files(path, map[string]string{"cert_file": t.CertFile, "key_file": t.KeyFile}, false)
}

func trimPrefix(s, p string) string {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}
