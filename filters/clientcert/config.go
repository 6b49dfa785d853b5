package clientcert

import (
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"strings"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Name is the filter's registered name.
const Name = "client_cert"

func init() {
	pipeline.Register(pipeline.Module{Name: Name, New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config lists the SANs a client certificate may have to be let through.
// At least one entry is required; a certificate passes when any of its
// SANs matches any entry.
type Config struct {
	// DNSNames are allowed DNS SANs: exact names, or "*.example.com" for
	// exactly one label more. Case-insensitive.
	DNSNames []string `yaml:"dns_names"`
	// URIs are allowed URI SANs, such as SPIFFE IDs: exact, or a prefix
	// ending in "*" ("spiffe://cluster.local/ns/orders/*").
	URIs []string `yaml:"uris"`
	// Emails are allowed email SANs: "ops@example.com" exactly (the domain
	// case-insensitively), or "@example.com" for any address at that
	// domain.
	Emails []string `yaml:"emails"`
	// IPs are allowed IP SANs: addresses or CIDR prefixes ("10.0.0.0/8").
	IPs []string `yaml:"ips"`
}

// Validate reports every problem with the config, naming the fields by
// their yaml names.
func (c *Config) Validate() error {
	_, err := compile(*c)
	return err
}

// Build makes the filter.
func (c *Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) { return New(*c) }

// compile checks cfg and builds its matcher.
func compile(cfg Config) (*Matcher, error) {
	var errs []error
	bad := func(field string, i int, v, why string) {
		errs = append(errs, fmt.Errorf("%s[%d] %q: %s", field, i, v, why))
	}
	m := &Matcher{}
	if len(cfg.DNSNames)+len(cfg.URIs)+len(cfg.Emails)+len(cfg.IPs) == 0 {
		errs = append(errs, errors.New("at least one of dns_names, uris, emails, ips is required"))
	}
	for i, p := range cfg.DNSNames {
		d, why := parseDNS(p)
		if why != "" {
			bad("dns_names", i, p, why)
			continue
		}
		m.dns = append(m.dns, d)
	}
	for i, p := range cfg.URIs {
		u, why := parseURI(p)
		if why != "" {
			bad("uris", i, p, why)
			continue
		}
		m.uris = append(m.uris, u)
	}
	for i, p := range cfg.Emails {
		e, why := parseEmail(p)
		if why != "" {
			bad("emails", i, p, why)
			continue
		}
		m.emails = append(m.emails, e)
	}
	for i, p := range cfg.IPs {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil || addr.Zone() != "" {
				bad("ips", i, p, "not an IP address or CIDR prefix")
				continue
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		if prefix != prefix.Masked() {
			bad("ips", i, p, fmt.Sprintf("has host bits set; write %s", prefix.Masked()))
			continue
		}
		addr, bits := prefix.Addr(), prefix.Bits()
		if addr.Is4In6() { // at least /96, or the check above failed
			addr, bits = addr.Unmap(), bits-96
		}
		m.ips = append(m.ips, netip.PrefixFrom(addr, bits))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", Name, err)
	}
	return m, nil
}

func parseDNS(p string) (dnsPattern, string) {
	name := strings.ToLower(p)
	wildcard := strings.HasPrefix(name, "*.")
	if wildcard {
		name = name[2:]
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		switch {
		case l == "":
			return dnsPattern{}, "has an empty label"
		case strings.Contains(l, "*"):
			return dnsPattern{}, `"*" is allowed only as the whole first label`
		}
		for _, r := range l {
			if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return dnsPattern{}, fmt.Sprintf("invalid character %q", r)
			}
		}
	}
	if wildcard && len(labels) < 2 {
		return dnsPattern{}, "a wildcard needs at least two labels after it"
	}
	return dnsPattern{name: name, wildcard: wildcard}, ""
}

func parseURI(p string) (uriPattern, string) {
	prefix := strings.HasSuffix(p, "*")
	s := strings.TrimSuffix(p, "*")
	if strings.Contains(s, "*") {
		return uriPattern{}, `"*" is allowed only at the end`
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return uriPattern{}, "not a URI with a scheme"
	}
	return uriPattern{s: s, prefix: prefix}, ""
}

func parseEmail(p string) (emailPattern, string) {
	local, domain, ok := strings.Cut(p, "@")
	if !ok || domain == "" || strings.Contains(domain, "@") {
		return emailPattern{}, `want "name@domain" or "@domain"`
	}
	return emailPattern{local: local, domain: strings.ToLower(domain)}, ""
}

var _ pipeline.FilterConfig = (*Config)(nil)
