package server_test

import (
	"crypto/tls"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/internal/testpki"
	"github.com/manifold-grpc/manifold/server"
)

// tlsClient returns a TestService client that dials addr with TLS.
func tlsClient(t *testing.T, addr string, cfg *tls.Config) testpb.TestServiceClient {
	t.Helper()
	return testpb.NewTestServiceClient(proxytest.Dial(t, addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg))))
}

// TestTLS checks that WithTLS serves TLS that a client trusting the
// certificate can call through, and that a plaintext client cannot.
func TestTLS(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, "ca")
	cert := ca.Server(t, "proxy")
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		ServerOptions: []server.Option{server.WithTLS(&tls.Config{
			Certificates: []tls.Certificate{cert},
			MinVersion:   tls.VersionTLS12,
		})},
	})
	ctx := testContext(t)

	var p peer.Peer
	client := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: ca.Pool()})
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
	ca, strangerCA := testpki.NewCA(t, "ca"), testpki.NewCA(t, "stranger ca")
	clientCert, strangerCert := ca.Client(t, "client"), strangerCA.Client(t, "stranger")
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		ServerOptions: []server.Option{server.WithTLS(&tls.Config{
			Certificates: []tls.Certificate{ca.Server(t, "proxy")},
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    ca.Pool(),
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
			client := tlsClient(t, env.ProxyAddr, &tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs})
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
	ca := testpki.NewCA(t, "ca")
	cert := ca.Server(t, "proxy")
	f := testpki.NewFiles(t)
	f.Write(t, cert)
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
					RootCAs: ca.Pool(), MinVersion: v, MaxVersion: v,
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
