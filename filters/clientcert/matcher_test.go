package clientcert_test

import (
	"crypto/x509"
	"net"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/manifold-grpc/manifold/filters/clientcert"
	"github.com/manifold-grpc/manifold/pipeline"
)

// sans is a certificate's subject alternative names.
type sans struct {
	dns, uris, emails, ips []string
}

func (s sans) cert(t *testing.T) *x509.Certificate {
	t.Helper()
	c := &x509.Certificate{DNSNames: s.dns, EmailAddresses: s.emails}
	for _, u := range s.uris {
		parsed, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		c.URIs = append(c.URIs, parsed)
	}
	for _, ip := range s.ips {
		c.IPAddresses = append(c.IPAddresses, net.ParseIP(ip))
	}
	return c
}

func TestMatcher(t *testing.T) {
	t.Parallel()
	spiffe := clientcert.Config{URIs: []string{"spiffe://cluster.local/ns/orders/sa/api", "spiffe://cluster.local/ns/batch/*"}}
	tests := []struct {
		name       string
		cfg        clientcert.Config
		sans       sans
		want       string // the identity, or "" for no match
		wantReason string
	}{
		{"exact URI", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/orders/sa/api"}}, "uri:spiffe://cluster.local/ns/orders/sa/api", ""},
		{"URI prefix", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch/sa/cron"}}, "uri:spiffe://cluster.local/ns/batch/sa/cron", ""},
		{"URI prefix needs its slash", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch-evil/sa/x"}}, "", "uri: none matches"},
		{"URI prefix does not climb out with ..", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch/../orders/sa/admin"}}, "", "uri: none matches"},
		{"URI prefix does not climb out with an encoded slash", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch/..%2forders"}}, "", "uri: none matches"},
		{"URI prefix with a dot segment", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch/./sa/cron"}}, "", "uri: none matches"},
		{"URI prefix allows dots inside names", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/batch/sa/cron.v2..x"}}, "uri:spiffe://cluster.local/ns/batch/sa/cron.v2..x", ""},
		{"exact URI is not a prefix", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/orders/sa/api2"}}, "", "uri: none matches"},
		{"URI is case-sensitive", spiffe, sans{uris: []string{"spiffe://cluster.local/ns/ORDERS/sa/api"}}, "", "uri: none matches"},
		{"second URI matches", spiffe, sans{uris: []string{"spiffe://other/x", "spiffe://cluster.local/ns/orders/sa/api"}}, "uri:spiffe://cluster.local/ns/orders/sa/api", ""},
		{"no URI SAN", spiffe, sans{dns: []string{"api.example.com"}}, "", "uri: none in certificate"},

		{"exact DNS", clientcert.Config{DNSNames: []string{"api.example.com"}}, sans{dns: []string{"api.example.com"}}, "dns:api.example.com", ""},
		{"DNS is case-insensitive", clientcert.Config{DNSNames: []string{"API.example.com"}}, sans{dns: []string{"api.EXAMPLE.com"}}, "dns:api.EXAMPLE.com", ""},
		{"DNS with trailing dot", clientcert.Config{DNSNames: []string{"api.example.com"}}, sans{dns: []string{"api.example.com."}}, "dns:api.example.com.", ""},
		{"wildcard: one label", clientcert.Config{DNSNames: []string{"*.example.com"}}, sans{dns: []string{"a.example.com"}}, "dns:a.example.com", ""},
		{"wildcard: not the bare domain", clientcert.Config{DNSNames: []string{"*.example.com"}}, sans{dns: []string{"example.com"}}, "", "dns: none matches"},
		{"wildcard: not two labels", clientcert.Config{DNSNames: []string{"*.example.com"}}, sans{dns: []string{"a.b.example.com"}}, "", "dns: none matches"},
		{"wildcard: not a suffix of a label", clientcert.Config{DNSNames: []string{"*.example.com"}}, sans{dns: []string{"aexample.com"}}, "", "dns: none matches"},
		{"wildcard SAN is not a wildcard", clientcert.Config{DNSNames: []string{"*.example.com"}}, sans{dns: []string{"*.example.com"}}, "", "dns: none matches"},
		{"exact is not a wildcard", clientcert.Config{DNSNames: []string{"example.com"}}, sans{dns: []string{"a.example.com"}}, "", "dns: none matches"},

		{"exact email", clientcert.Config{Emails: []string{"ops@example.com"}}, sans{emails: []string{"ops@EXAMPLE.com"}}, "email:ops@EXAMPLE.com", ""},
		{"email local part is case-sensitive", clientcert.Config{Emails: []string{"ops@example.com"}}, sans{emails: []string{"OPS@example.com"}}, "", "email: none matches"},
		{"email domain", clientcert.Config{Emails: []string{"@example.com"}}, sans{emails: []string{"dev@example.com"}}, "email:dev@example.com", ""},
		{"email domain is not a subdomain", clientcert.Config{Emails: []string{"@example.com"}}, sans{emails: []string{"dev@evil.example.com"}}, "", "email: none matches"},

		{"exact IPv4", clientcert.Config{IPs: []string{"10.1.2.3"}}, sans{ips: []string{"10.1.2.3"}}, "ip:10.1.2.3", ""},
		{"IPv4 in CIDR", clientcert.Config{IPs: []string{"10.0.0.0/8"}}, sans{ips: []string{"10.200.0.1"}}, "ip:10.200.0.1", ""},
		{"IPv4 outside CIDR", clientcert.Config{IPs: []string{"10.0.0.0/8"}}, sans{ips: []string{"11.0.0.1"}}, "", "ip: none matches"},
		{"IPv6 in CIDR", clientcert.Config{IPs: []string{"2001:db8::/32"}}, sans{ips: []string{"2001:db8::7"}}, "ip:2001:db8::7", ""},
		{"IPv4-mapped config", clientcert.Config{IPs: []string{"::ffff:10.0.0.0/104"}}, sans{ips: []string{"10.9.9.9"}}, "ip:10.9.9.9", ""},
		{"IPv4 is not IPv6", clientcert.Config{IPs: []string{"2001:db8::/32"}}, sans{ips: []string{"10.0.0.1"}}, "", "ip: none matches"},

		{"any kind matches", clientcert.Config{DNSNames: []string{"api.example.com"}, IPs: []string{"10.0.0.0/8"}},
			sans{dns: []string{"other.example.com"}, ips: []string{"10.0.0.1"}}, "ip:10.0.0.1", ""},
		{"URIs are tried first", clientcert.Config{DNSNames: []string{"api.example.com"}, URIs: []string{"spiffe://td/*"}},
			sans{dns: []string{"api.example.com"}, uris: []string{"spiffe://td/a"}}, "uri:spiffe://td/a", ""},
		{"reason names every configured kind", clientcert.Config{DNSNames: []string{"api.example.com"}, URIs: []string{"spiffe://td/*"}, Emails: []string{"@example.com"}},
			sans{dns: []string{"x.example.com"}, ips: []string{"10.0.0.1"}}, "", "uri: none in certificate; dns: none matches; email: none in certificate"},
		{"no SANs at all", clientcert.Config{DNSNames: []string{"api.example.com"}}, sans{}, "", "dns: none in certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, err := clientcert.NewMatcher(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			id, ok, reason := m.Match(tt.sans.cert(t))
			got := ""
			if ok {
				got = id.String()
			}
			if got != tt.want || reason != tt.wantReason {
				t.Errorf("Match() = %q, reason %q; want %q, reason %q", got, reason, tt.want, tt.wantReason)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     clientcert.Config
		wantErr []string
	}{
		{"empty", clientcert.Config{}, []string{"at least one of dns_names, uris, emails, ips is required"}},
		{"valid", clientcert.Config{
			DNSNames: []string{"api.example.com", "*.example.com", "svc_1.internal"},
			URIs:     []string{"spiffe://cluster.local/ns/x/sa/y", "spiffe://cluster.local/ns/*"},
			Emails:   []string{"ops@example.com", "@example.com"},
			IPs:      []string{"10.0.0.1", "10.0.0.0/8", "2001:db8::/32"},
		}, nil},
		{"bad DNS names", clientcert.Config{DNSNames: []string{"a..b", "a.*.com", "*.com", "*", "a b.com", "api.example.com."}}, []string{
			`dns_names[0] "a..b": has an empty label`,
			`dns_names[1] "a.*.com": "*" is allowed only as the whole first label`,
			`dns_names[2] "*.com": a wildcard needs at least two labels after it`,
			`dns_names[3] "*": "*" is allowed only as the whole first label`,
			`dns_names[4] "a b.com": invalid character ' '`,
			`dns_names[5] "api.example.com.": has an empty label`,
		}},
		{"bad URIs", clientcert.Config{URIs: []string{"no-scheme/x", "spiffe://*/x", "*"}}, []string{
			`uris[0] "no-scheme/x": not a URI with a scheme`,
			`uris[1] "spiffe://*/x": "*" is allowed only at the end`,
			`uris[2] "*": not a URI with a scheme`,
		}},
		{"bad emails", clientcert.Config{Emails: []string{"ops", "ops@", "a@b@c"}}, []string{
			`emails[0] "ops": want "name@domain" or "@domain"`,
			`emails[1] "ops@": want "name@domain" or "@domain"`,
			`emails[2] "a@b@c": want "name@domain" or "@domain"`,
		}},
		{"bad IPs", clientcert.Config{IPs: []string{"10.0.0", "10.0.0.1/8", "fe80::1%eth0"}}, []string{
			`ips[0] "10.0.0": not an IP address or CIDR prefix`,
			`ips[1] "10.0.0.1/8": has host bits set; write 10.0.0.0/8`,
			`ips[2] "fe80::1%eth0": not an IP address or CIDR prefix`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := tt.cfg.Validate()
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			if !strings.HasPrefix(err.Error(), "client_cert: ") {
				t.Errorf("error %q does not name the filter", err)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Validate() = %v\nwant it to contain %s", err, want)
				}
			}
			if _, err := clientcert.New(tt.cfg); err == nil {
				t.Error("New accepted a config that Validate refuses")
			}
		})
	}
}

// TestYAML decodes the package documentation's example and the registered
// module's config.
func TestYAML(t *testing.T) {
	t.Parallel()
	m, ok := pipeline.Lookup("client_cert")
	if !ok {
		t.Fatal("client_cert is not registered")
	}
	cfg := m.New()
	src := `
uris: ["spiffe://cluster.local/ns/orders/sa/api", "spiffe://cluster.local/ns/batch/*"]
dns_names: ["*.internal.example.com"]
emails: ["@example.com"]
ips: ["10.0.0.0/8"]
`
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	want := &clientcert.Config{
		URIs:     []string{"spiffe://cluster.local/ns/orders/sa/api", "spiffe://cluster.local/ns/batch/*"},
		DNSNames: []string{"*.internal.example.com"},
		Emails:   []string{"@example.com"},
		IPs:      []string{"10.0.0.0/8"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("decoded %+v, want %+v", cfg, want)
	}
	f, err := cfg.Build(pipeline.BuildEnv{})
	if err != nil || f.Name() != "client_cert" {
		t.Errorf("Build() = %v, %v; want the client_cert filter", f, err)
	}
}
