package testpki_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/manifold-grpc/manifold/internal/testpki"
)

// sans lists a certificate's SANs in one comparable form.
func sans(c *x509.Certificate) []string {
	var out []string
	for _, d := range c.DNSNames {
		out = append(out, "dns:"+d)
	}
	for _, ip := range c.IPAddresses {
		out = append(out, "ip:"+ip.String())
	}
	for _, u := range c.URIs {
		out = append(out, "uri:"+u.String())
	}
	for _, e := range c.EmailAddresses {
		out = append(out, "email:"+e)
	}
	return out
}

// TestIssue checks what each kind of certificate holds: its common name,
// usage, SANs, key, issuer and validity.
func TestIssue(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "test ca")
	own, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		cert      tls.Certificate
		wantCN    string
		wantUsage x509.ExtKeyUsage
		wantSANs  []string
	}{
		{"server defaults", ca.Server(t, "proxy"), "proxy", x509.ExtKeyUsageServerAuth,
			[]string{"dns:localhost", "ip:127.0.0.1", "ip:::1"}},
		{"server with SANs", ca.Server(t, "api", testpki.DNS("api.test"), testpki.IP("10.0.0.1")), "api", x509.ExtKeyUsageServerAuth,
			[]string{"dns:api.test", "ip:10.0.0.1"}},
		{"client without SANs", ca.Client(t, "bare"), "bare", x509.ExtKeyUsageClientAuth, nil},
		{"client with every kind", ca.Client(t, "leaf",
			testpki.URI("spiffe://cluster.local/ns/a/sa/b", "spiffe://other/x"), testpki.DNS("a.test"),
			testpki.Email("a@example.com"), testpki.IP("192.0.2.1")), "leaf", x509.ExtKeyUsageClientAuth,
			[]string{"dns:a.test", "ip:192.0.2.1", "uri:spiffe://cluster.local/ns/a/sa/b", "uri:spiffe://other/x", "email:a@example.com"}},
		{"client with its own key", ca.Client(t, "keyed", testpki.Key(own)), "keyed", x509.ExtKeyUsageClientAuth, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			leaf := tt.cert.Leaf
			if len(tt.cert.Certificate) != 1 || !slices.Equal(tt.cert.Certificate[0], leaf.Raw) {
				t.Error("Certificate does not hold the leaf's DER")
			}
			if leaf.Subject.CommonName != tt.wantCN || leaf.IsCA {
				t.Errorf("CN %q IsCA %v, want %q and not a CA", leaf.Subject.CommonName, leaf.IsCA, tt.wantCN)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{tt.wantUsage}) {
				t.Errorf("ExtKeyUsage %v, want [%v]", leaf.ExtKeyUsage, tt.wantUsage)
			}
			if got := sans(leaf); !slices.Equal(got, tt.wantSANs) {
				t.Errorf("SANs %q, want %q", got, tt.wantSANs)
			}
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{tt.wantUsage}}); err != nil {
				t.Errorf("does not verify against the CA: %v", err)
			}
			if now := time.Now(); now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
				t.Errorf("not valid now: %v to %v", leaf.NotBefore, leaf.NotAfter)
			}
			pub, ok := tt.cert.PrivateKey.(*ecdsa.PrivateKey)
			if !ok || !pub.PublicKey.Equal(leaf.PublicKey) {
				t.Error("PrivateKey does not match the certificate")
			}
			if tt.name == "client with its own key" && tt.cert.PrivateKey != own {
				t.Error("Key option ignored")
			}
		})
	}
	if a, b := ca.Server(t, "a"), ca.Server(t, "a"); a.Leaf.SerialNumber.Cmp(b.Leaf.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
	if !ca.Cert.IsCA || ca.Cert.Subject.CommonName != "test ca" {
		t.Errorf("CA certificate: IsCA %v, CN %q", ca.Cert.IsCA, ca.Cert.Subject.CommonName)
	}
}

// TestMutualTLS runs a real handshake over loopback: a server and a
// client certificate of one CA are accepted both ways; a client
// certificate of another CA is refused.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	ca, other := testpki.NewCA(t, "ca"), testpki.NewCA(t, "other")
	lis, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{ca.Server(t, "server")},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    ca.Pool(),
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() { lis.Close(); <-done }()
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			// The handshake's outcome reaches the client as a one-byte
			// answer or as a closed connection.
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			if c.(*tls.Conn).Handshake() == nil {
				_, _ = c.Write([]byte{1})
			}
			c.Close()
		}
	}()
	tests := []struct {
		name   string
		cert   tls.Certificate
		dial   string
		wantOK bool
	}{
		{"same CA, IPv4", ca.Client(t, "client"), lis.Addr().String(), true},
		{"same CA, by name", ca.Client(t, "client"), "localhost:" + portOf(t, lis.Addr()), true},
		{"other CA", other.Client(t, "stranger"), lis.Addr().String(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tls.Dialer{Config: &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{tt.cert}}}
			c, err := d.Dial("tcp", tt.dial)
			if err == nil {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				_, err = c.Read(make([]byte, 1))
				c.Close()
			}
			if (err == nil) != tt.wantOK {
				t.Errorf("handshake error %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func portOf(t *testing.T, a net.Addr) string {
	_, port, err := net.SplitHostPort(a.String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestFiles writes a key pair and a CA bundle and loads them as a server
// would; a second Write replaces the pair, leaving no temporary file.
func TestFiles(t *testing.T) {
	t.Parallel()
	ca, ca2 := testpki.NewCA(t, "ca"), testpki.NewCA(t, "ca 2")
	f := testpki.NewFiles(t)
	if filepath.Dir(f.Cert) != filepath.Dir(f.Key) || filepath.Dir(f.Key) != filepath.Dir(f.CA) {
		t.Errorf("files in different directories: %+v", f)
	}
	for _, c := range []tls.Certificate{ca.Server(t, "first"), ca.Server(t, "second")} {
		f.Write(t, c)
		got, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Certificate[0], c.Leaf.Raw) {
			t.Errorf("loaded certificate %q, want %q", got.Leaf.Subject.CommonName, c.Leaf.Subject.CommonName)
		}
	}
	keyPEM, err := os.ReadFile(f.Key)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("key file is not a PKCS #8 PRIVATE KEY block")
	}

	f.WriteCA(t, ca, ca2)
	b, err := os.ReadFile(f.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) || !pool.Equal(poolOf(ca, ca2)) {
		t.Error("CA file does not hold exactly both CAs")
	}
	ents, err := os.ReadDir(filepath.Dir(f.Cert))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{"ca.crt", "tls.crt", "tls.key"}; !slices.Equal(names, want) {
		t.Errorf("directory holds %q, want %q", names, want)
	}
}

func poolOf(cas ...*testpki.CA) *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range cas {
		p.AddCert(ca.Cert)
	}
	return p
}

// TestPEM checks that CertPEM and KeyPEM round-trip.
func TestPEM(t *testing.T) {
	t.Parallel()
	c := testpki.NewCA(t, "ca").Client(t, "pem")
	got, err := tls.X509KeyPair(testpki.CertPEM(c.Leaf), testpki.KeyPEM(t, c))
	if err != nil {
		t.Fatal(err)
	}
	if !got.Leaf.Equal(c.Leaf) {
		t.Error("CertPEM did not round-trip")
	}
}
