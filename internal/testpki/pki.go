package testpki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/url"
	"testing"
	"time"
)

// CA is a certificate authority made for one test.
type CA struct {
	// Cert is the CA's self-signed certificate. Do not modify it.
	Cert *x509.Certificate
	key  crypto.Signer
}

// NewCA returns a new CA whose certificate's common name is name.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key := newKey(t)
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	return &CA{Cert: sign(t, tmpl, nil, key), key: key}
}

// Pool returns a new pool that trusts only ca.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Server issues a certificate for TLS servers (extended key usage
// serverAuth) whose common name is name. Without options its SANs are
// 127.0.0.1, ::1 and localhost; with SAN options, only those.
func (ca *CA) Server(t testing.TB, name string, opts ...Option) tls.Certificate {
	t.Helper()
	if !hasSAN(opts) {
		opts = append(opts, IP("127.0.0.1"), IP("::1"), DNS("localhost"))
	}
	return ca.issue(t, name, x509.ExtKeyUsageServerAuth, opts)
}

// Client issues a certificate for TLS clients (extended key usage
// clientAuth) whose common name is name, with exactly the SANs of opts
// (none without).
func (ca *CA) Client(t testing.TB, name string, opts ...Option) tls.Certificate {
	t.Helper()
	return ca.issue(t, name, x509.ExtKeyUsageClientAuth, opts)
}

func (ca *CA) issue(t testing.TB, name string, usage x509.ExtKeyUsage, opts []Option) tls.Certificate {
	t.Helper()
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{usage},
	}
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	tmpl.DNSNames, tmpl.EmailAddresses = o.dns, o.emails
	for _, s := range o.ips {
		ip := net.ParseIP(s)
		if ip == nil {
			t.Fatalf("testpki: bad IP address %q", s)
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
	}
	for _, s := range o.uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("testpki: %v", err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	key := o.key
	if key == nil {
		key = newKey(t)
	}
	leaf := sign(t, tmpl, ca, key)
	return tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
}

// An Option adds to a certificate that [CA.Server] or [CA.Client] issues:
// a subject alternative name ([DNS], [IP], [URI], [Email]) or its key
// ([Key]).
type Option interface{ apply(*options) }

type options struct {
	dns, ips, uris, emails []string
	key                    crypto.Signer
}

type optionFunc func(*options)

func (f optionFunc) apply(o *options) { f(o) }

// DNS adds DNS name SANs.
func DNS(names ...string) Option {
	return optionFunc(func(o *options) { o.dns = append(o.dns, names...) })
}

// IP adds IP address SANs, such as "127.0.0.1" or "::1".
func IP(addrs ...string) Option {
	return optionFunc(func(o *options) { o.ips = append(o.ips, addrs...) })
}

// URI adds URI SANs, such as SPIFFE IDs.
func URI(uris ...string) Option {
	return optionFunc(func(o *options) { o.uris = append(o.uris, uris...) })
}

// Email adds email address SANs.
func Email(addrs ...string) Option {
	return optionFunc(func(o *options) { o.emails = append(o.emails, addrs...) })
}

// Key makes the certificate carry key's public key instead of a new
// key's; the returned tls.Certificate holds key. It adds no SAN.
func Key(key crypto.Signer) Option {
	return optionFunc(func(o *options) { o.key = key })
}

func hasSAN(opts []Option) bool {
	var o options
	for _, opt := range opts {
		opt.apply(&o)
	}
	return len(o.dns)+len(o.ips)+len(o.uris)+len(o.emails) > 0
}

func newKey(t testing.TB) crypto.Signer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// serialLimit bounds serial numbers: 128 bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// sign creates tmpl for key, signed by parent, or self-signed when parent
// is nil.
func sign(t testing.TB, tmpl *x509.Certificate, parent *CA, key crypto.Signer) *x509.Certificate {
	t.Helper()
	serial, err := rand.Int(rand.Reader, serialLimit)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	parentCert, parentKey := tmpl, key
	if parent != nil {
		parentCert, parentKey = parent.Cert, parent.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parentCert, key.Public(), parentKey)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// CertPEM encodes c as a "CERTIFICATE" PEM block.
func CertPEM(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// KeyPEM encodes c's private key as a PKCS #8 "PRIVATE KEY" PEM block.
func KeyPEM(t testing.TB, c tls.Certificate) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}
