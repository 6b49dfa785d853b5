package cluster_test

import (
	"context"
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
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// serverCert returns a self-signed ECDSA certificate for 127.0.0.1 and a
// pool that trusts it.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "upstream"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
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

// cbcSuites are TLS 1.0–1.2 cipher suites that TLS 1.1 can use; set on
// both sides, so that only the protocol version can make a handshake fail.
var cbcSuites = []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}

// TestTLSMinVersion: a cluster never speaks TLS below 1.2, even when the
// caller's tls.Config allows TLS 1.0: an upstream that speaks at most TLS
// 1.1 is refused, the same upstream allowing TLS 1.2 is reached with TLS
// 1.2, and the caller's config is left unchanged.
func TestTLSMinVersion(t *testing.T) {
	t.Parallel()
	cert, pool := serverCert(t)
	tests := []struct {
		name        string
		serverMax   uint16
		wantCode    codes.Code
		wantVersion uint16
	}{
		{"TLS 1.1 upstream refused", tls.VersionTLS11, codes.Unavailable, 0},
		{"TLS 1.2 upstream", tls.VersionTLS12, codes.OK, tls.VersionTLS12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			serverTLS := &tls.Config{
				Certificates: []tls.Certificate{cert},
				MinVersion:   tls.VersionTLS10,
				MaxVersion:   tt.serverMax,
				CipherSuites: cbcSuites,
			}
			addr, _ := testbackend.Start(t, &testbackend.Service{}, grpc.Creds(credentials.NewTLS(serverTLS)))
			clientTLS := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS10, CipherSuites: cbcSuites}
			cl, err := cluster.New(cluster.Config{Name: "tls", Target: "passthrough:///" + addr, TLS: clientTLS})
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			var p peer.Peer
			_, err = testpb.NewTestServiceClient(cl.Conn()).UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Peer(&p))
			if status.Code(err) != tt.wantCode {
				t.Fatalf("call: %v, want code %v", err, tt.wantCode)
			}
			if err != nil && !strings.Contains(err.Error(), "protocol version") {
				t.Errorf("call: %v, want a protocol version error", err)
			}
			if err == nil {
				info, ok := p.AuthInfo.(credentials.TLSInfo)
				if !ok {
					t.Fatalf("peer auth info %T, want TLS", p.AuthInfo)
				}
				if info.State.Version != tt.wantVersion {
					t.Errorf("TLS version %s, want %s", tls.VersionName(info.State.Version), tls.VersionName(tt.wantVersion))
				}
			}
			if clientTLS.MinVersion != tls.VersionTLS10 {
				t.Errorf("the caller's tls.Config was changed: MinVersion %s", tls.VersionName(clientTLS.MinVersion))
			}
		})
	}
}
