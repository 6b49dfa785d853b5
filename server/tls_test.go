package server_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/server"
)

// selfSigned returns a self-signed ECDSA certificate for 127.0.0.1 usable
// for usage, and a pool that trusts it.
func selfSigned(t *testing.T, name string, usage x509.ExtKeyUsage) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{usage},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// tlsClient returns a TestService client that dials addr with TLS.
func tlsClient(t *testing.T, addr string, cfg *tls.Config) testpb.TestServiceClient {
	t.Helper()
	return testpb.NewTestServiceClient(proxytest.Dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg))))
}

// TestTLS checks that WithTLS serves TLS that a client trusting the
// certificate can call through, and that a plaintext client cannot.
func TestTLS(t *testing.T) {
	t.Parallel()
	cert, roots := selfSigned(t, "proxy", x509.ExtKeyUsageServerAuth)
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		ServerOptions: []server.Option{server.WithTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		})},
	})
	ctx := testContext(t)

	var p peer.Peer
	client := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: roots})
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("tls")}}, grpc.Peer(&p))
	if err != nil {
		t.Fatalf("UnaryCall over TLS: %v", err)
	}
	if got := string(resp.GetPayload().GetBody()); got != "tls" {
		t.Errorf("echo = %q, want %q", got, "tls")
	}
	if info, ok := p.AuthInfo.(credentials.TLSInfo); !ok || !info.State.HandshakeComplete {
		t.Errorf("call did not use TLS: auth info %v", p.AuthInfo)
	}

	// env.Client is plaintext.
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err == nil {
		t.Error("plaintext call to a TLS proxy succeeded")
	}
	// A client that does not trust the certificate.
	if _, err := tlsClient(t, env.ProxyAddr, &tls.Config{}).UnaryCall(ctx, &testpb.SimpleRequest{}); err == nil {
		t.Error("call from a client that does not trust the proxy's certificate succeeded")
	}
}

// TestMutualTLS checks that with ClientAuth RequireAndVerifyClientCert a
// client without a certificate, or with an untrusted one, is refused and a
// client with a trusted certificate gets through.
func TestMutualTLS(t *testing.T) {
	t.Parallel()
	serverCert, serverRoots := selfSigned(t, "proxy", x509.ExtKeyUsageServerAuth)
	clientCert, clientRoots := selfSigned(t, "client", x509.ExtKeyUsageClientAuth)
	strangerCert, _ := selfSigned(t, "stranger", x509.ExtKeyUsageClientAuth)
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		ServerOptions: []server.Option{server.WithTLS(&tls.Config{
			Certificates: []tls.Certificate{serverCert},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    clientRoots,
			MinVersion:   tls.VersionTLS12,
		})},
	})

	tests := []struct {
		name   string
		certs  []tls.Certificate
		wantOK bool
	}{
		{"no client certificate", nil, false},
		{"untrusted client certificate", []tls.Certificate{strangerCert}, false},
		{"trusted client certificate", []tls.Certificate{clientCert}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			client := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: serverRoots, Certificates: tt.certs})
			_, err := client.UnaryCall(ctx, &testpb.SimpleRequest{})
			if tt.wantOK && err != nil {
				t.Errorf("UnaryCall: %v", err)
			}
			if !tt.wantOK && err == nil {
				t.Error("UnaryCall succeeded, want the proxy to refuse the client")
			}
		})
	}
}

// TestMinTLSVersion checks that the server never negotiates below TLS 1.2:
// not with a config that leaves MinVersion unset, nor with a per-client
// config asking for TLS 1.0, nor with a CertReloader; and that a reloader
// set to TLS 1.3 refuses TLS 1.2.
func TestMinTLSVersion(t *testing.T) {
	t.Parallel()
	ca := newCA(t, "ca")
	cert := ca.issue(t, "proxy", x509.ExtKeyUsageServerAuth)
	f := newCertFiles(t)
	f.write(t, cert)
	reloader := func(opts ...server.CertOption) *tls.Config {
		return newReloader(t, f, "", append(opts, server.WithReloadInterval(0))...).TLSConfig()
	}
	tests := []struct {
		name   string
		cfg    *tls.Config
		oldest uint16 // the oldest version that must work
	}{
		{"MinVersion unset", &tls.Config{Certificates: []tls.Certificate{cert}}, tls.VersionTLS12},
		// With cipher suites that TLS 1.0 can use: grpc-go's defaults
		// leave none.
		{"per-client config allowing TLS 1.0", &tls.Config{
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				return &tls.Config{
					Certificates: []tls.Certificate{cert},
					MinVersion:   tls.VersionTLS10,
					CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
				}, nil
			},
		}, tls.VersionTLS12},
		{"reloader", reloader(), tls.VersionTLS12},
		{"reloader with TLS 1.3", reloader(server.WithMinTLSVersion(tls.VersionTLS13)), tls.VersionTLS13},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := proxytest.Serve(t, nopHandler, server.WithTLS(tt.cfg))
			for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13} {
				cs, err := handshake(t, addr, &tls.Config{
					RootCAs: ca.pool(), MinVersion: v, MaxVersion: v,
					CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
				})
				switch {
				case v < tt.oldest && err == nil:
					t.Errorf("a %s client connected", tls.VersionName(v))
				case v >= tt.oldest && err != nil:
					t.Errorf("a %s client: %v", tls.VersionName(v), err)
				case v >= tt.oldest && cs.Version != v:
					t.Errorf("a %s client negotiated %s", tls.VersionName(v), tls.VersionName(cs.Version))
				}
			}
		})
	}
}

// TestParseTLSVersion checks the config spellings of TLS versions.
func TestParseTLSVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    uint16
		wantErr string
	}{
		{"1.2", tls.VersionTLS12, ""},
		{"1.3", tls.VersionTLS13, ""},
		{"1.1", 0, "not allowed"},
		{"1.0", 0, "not allowed"},
		{"", 0, "want 1.2 or 1.3"},
		{"TLS1.3", 0, "want 1.2 or 1.3"},
	}
	for _, tt := range tests {
		got, err := server.ParseTLSVersion(tt.in)
		if got != tt.want || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("ParseTLSVersion(%q) = %x, %v; want %x, error containing %q", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}
