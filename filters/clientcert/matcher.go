package clientcert

import (
	"crypto/x509"
	"net/netip"
	"strings"
)

// Kind is a kind of subject alternative name.
type Kind string

// The kinds of SAN, in the order [Matcher.Match] tries them.
const (
	KindURI   Kind = "uri"
	KindDNS   Kind = "dns"
	KindEmail Kind = "email"
	KindIP    Kind = "ip"
)

// Identity is the SAN of a client certificate that a rule allowed.
type Identity struct {
	// Kind is the SAN's kind.
	Kind Kind
	// Value is the SAN as the certificate has it: a DNS name, URI, email
	// address or IP address.
	Value string
}

// String returns "kind:value", e.g. "uri:spiffe://cluster.local/ns/x/sa/y".
func (id Identity) String() string { return string(id.Kind) + ":" + id.Value }

// Matcher decides whether a certificate's SANs are allowed. It is
// immutable and safe for concurrent use.
type Matcher struct {
	dns    []dnsPattern
	uris   []uriPattern
	emails []emailPattern
	ips    []netip.Prefix
}

// NewMatcher compiles cfg, failing as [Config.Validate] does.
func NewMatcher(cfg Config) (*Matcher, error) { return compile(cfg) }

// Match returns the first SAN of cert that the config allows, trying URIs,
// then DNS names, email addresses and IP addresses, each in the
// certificate's order. When none is allowed it returns false and a reason
// that names, for each kind the config lists, whether the certificate has
// no SAN of that kind or none that matches; the reason never contains the
// certificate's names.
func (m *Matcher) Match(cert *x509.Certificate) (Identity, bool, string) {
	var reasons []string
	check := func(kind Kind, configured bool, sans []string, match func(string) bool) (Identity, bool) {
		if !configured {
			return Identity{}, false
		}
		for _, s := range sans {
			if match(s) {
				return Identity{Kind: kind, Value: s}, true
			}
		}
		if len(sans) == 0 {
			reasons = append(reasons, string(kind)+": none in certificate")
		} else {
			reasons = append(reasons, string(kind)+": none matches")
		}
		return Identity{}, false
	}
	uris := make([]string, 0, len(cert.URIs))
	for _, u := range cert.URIs {
		uris = append(uris, u.String())
	}
	if id, ok := check(KindURI, len(m.uris) > 0, uris, m.matchURI); ok {
		return id, true, ""
	}
	if id, ok := check(KindDNS, len(m.dns) > 0, cert.DNSNames, m.matchDNS); ok {
		return id, true, ""
	}
	if id, ok := check(KindEmail, len(m.emails) > 0, cert.EmailAddresses, m.matchEmail); ok {
		return id, true, ""
	}
	ips := make([]string, 0, len(cert.IPAddresses))
	for _, ip := range cert.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			ips = append(ips, a.Unmap().String())
		}
	}
	if id, ok := check(KindIP, len(m.ips) > 0, ips, m.matchIP); ok {
		return id, true, ""
	}
	return Identity{}, false, strings.Join(reasons, "; ")
}

type dnsPattern struct {
	name     string // lowercase, without the "*."
	wildcard bool
}

func (m *Matcher) matchDNS(san string) bool {
	san = strings.ToLower(strings.TrimSuffix(san, "."))
	for _, p := range m.dns {
		if !p.wildcard {
			if san == p.name {
				return true
			}
			continue
		}
		first, rest, ok := strings.Cut(san, ".")
		if ok && rest == p.name && first != "" && !strings.Contains(first, "*") {
			return true
		}
	}
	return false
}

type uriPattern struct {
	s      string
	prefix bool
}

func (m *Matcher) matchURI(san string) bool {
	for _, p := range m.uris {
		if san == p.s || p.prefix && strings.HasPrefix(san, p.s) && !dotSegments(san[len(p.s):]) {
			return true
		}
	}
	return false
}

// dotSegments reports whether rest, the part of a URI SAN after a prefix,
// could climb out of the prefix once some reader normalizes it: a "." or
// ".." segment, an encoded dot or slash, or a backslash.
// "spiffe://td/ns/orders/../admin" must not match "spiffe://td/ns/orders/*".
func dotSegments(rest string) bool {
	if strings.ContainsAny(rest, "%\\") {
		return true
	}
	for _, seg := range strings.Split(rest, "/") {
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

type emailPattern struct {
	local  string // "" for any address at domain
	domain string // lowercase
}

func (m *Matcher) matchEmail(san string) bool {
	local, domain, ok := strings.Cut(san, "@")
	if !ok || local == "" {
		return false
	}
	domain = strings.ToLower(domain)
	for _, p := range m.emails {
		if domain == p.domain && (p.local == "" || p.local == local) {
			return true
		}
	}
	return false
}

func (m *Matcher) matchIP(san string) bool {
	a, err := netip.ParseAddr(san)
	if err != nil {
		return false
	}
	for _, p := range m.ips {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
