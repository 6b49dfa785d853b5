package cluster_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/internal/testpki"
)

// serverCert returns a certificate for 127.0.0.1 and a pool that trusts
// its CA.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	ca := testpki.NewCA(t, "ca")
	return ca.Server(t, "upstream"), ca.Pool()
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

// TestStaticAddressesAuthority: with static addresses, each address is its
// own authority: TLS checks the upstream's certificate against it without
// a server_name, and the upstream sees it as :authority.
func TestStaticAddressesAuthority(t *testing.T) {
	t.Parallel()
	cert, pool := serverCert(t)
	authorities := make(chan string, 1)
	svc := &testbackend.Service{Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		authorities <- strings.Join(md.Get(":authority"), ",")
		return &testpb.SimpleResponse{}, nil
	}}
	addr, _ := testbackend.Start(t, svc, grpc.Creds(credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}})))
	cl, err := cluster.New(cluster.Config{Name: "tls-static", Addresses: []string{addr}, TLS: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := testpb.NewTestServiceClient(cl.Conn()).UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatalf("TLS to a static address without server_name: %v", err)
	}
	if got := <-authorities; got != addr {
		t.Errorf("upstream saw :authority %q, want the address %q", got, addr)
	}
}

// TestResolverServiceConfigIgnored: a resolver that hands out a service
// config (as DNS TXT records can) changes nothing: its retry policy is not
// applied, so a method the config does not retry is tried once.
func TestResolverServiceConfigIgnored(t *testing.T) {
	t.Parallel()
	var attempts atomic.Int32
	addr, _ := testbackend.Start(t, &testbackend.Service{Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
		attempts.Add(1)
		return nil, status.Error(codes.Unavailable, "try again")
	}})
	retryAll := `{"methodConfig": [{"name": [{"service": "grpc.testing.TestService"}],
		"retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.01s", "maxBackoff": "0.01s", "backoffMultiplier": 1, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`
	r := manual.NewBuilderWithScheme("txtconfig")
	r.BuildCallback = func(_ resolver.Target, cc resolver.ClientConn, _ resolver.BuildOptions) {
		_ = cc.UpdateState(resolver.State{
			Addresses:     []resolver.Address{{Addr: addr}},
			ServiceConfig: cc.ParseServiceConfig(retryAll),
		})
	}
	cl, err := cluster.New(cluster.Config{Name: "txt", Target: "txtconfig:///backend", DialOptions: []grpc.DialOption{grpc.WithResolvers(r)}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err = testpb.NewTestServiceClient(cl.Conn()).UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("call: %v, want UNAVAILABLE", err)
	}
	if n := attempts.Load(); n != 1 {
		t.Errorf("the upstream saw %d attempts, want 1: the resolver's retry policy was applied", n)
	}
}
