package clientcert_test

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/clientcert"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/internal/testpki"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// TestEndToEnd runs the filter in a proxy serving mutual TLS and calls it
// with real client certificates.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	ca, stranger := testpki.NewCA(t, "test CA"), testpki.NewCA(t, "stranger CA")
	serverCert := ca.Server(t, "proxy")
	client := func(sans ...testpki.Option) tls.Certificate { return ca.Client(t, "leaf", sans...) }

	var (
		mu       sync.Mutex
		upstream []string // the x-identity of each call that reached the backend
	)
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			upstream = append(upstream, strings.Join(md.Get("x-identity"), ","))
			mu.Unlock()
			return &testpb.SimpleResponse{}, nil
		},
	})
	filter, err := clientcert.New(clientcert.Config{
		URIs:     []string{"spiffe://cluster.local/ns/orders/*"},
		DNSNames: []string{"*.internal.example.com"},
	})
	if err != nil {
		t.Fatal(err)
	}
	// Copies the identity upstream, to show it is in the call's state.
	forward := pipeline.RequestHeadersFunc("forward", func(_ context.Context, call *pipeline.Call) error {
		if id, ok := clientcert.IdentityKey.Get(call); ok {
			call.Header.Set("x-identity", id.String())
		}
		return nil
	})
	proxy := func(auth tls.ClientAuthType) string {
		return proxytest.Start(t, addr, proxytest.Config{
			Filters: []pipeline.Filter{filter, forward},
			ServerOptions: []server.Option{server.WithTLS(&tls.Config{
				Certificates: []tls.Certificate{serverCert},
				ClientAuth:   auth,
				ClientCAs:    ca.Pool(),
			})},
		}).ProxyAddr
	}
	verifying := proxy(tls.VerifyClientCertIfGiven)
	requesting := proxy(tls.RequestClientCert) // asks for a certificate, verifies nothing
	plaintext := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{filter, forward}}).ProxyAddr

	orders := testpki.URI("spiffe://cluster.local/ns/orders/sa/api")
	tests := []struct {
		name       string
		addr       string
		certs      []tls.Certificate
		wantCode   codes.Code
		wantMsg    string
		wantIdent  string
		mustNotSay string
	}{
		{"allowed SPIFFE ID", verifying, []tls.Certificate{client(orders)}, codes.OK, "",
			"uri:spiffe://cluster.local/ns/orders/sa/api", ""},
		{"allowed DNS name", verifying, []tls.Certificate{client(testpki.DNS("batch.internal.example.com"))}, codes.OK, "",
			"dns:batch.internal.example.com", ""},
		{"SANs not allowed", verifying, []tls.Certificate{client(
			testpki.URI("spiffe://cluster.local/ns/evil/sa/x"), testpki.DNS("evil.example.com"),
		)}, codes.PermissionDenied, "client_cert: certificate not allowed: uri: none matches; dns: none matches", "", "evil"},
		{"no SAN of the allowed kinds", verifying, []tls.Certificate{client(testpki.Email("evil@example.com"))},
			codes.PermissionDenied, "client_cert: certificate not allowed: uri: none in certificate; dns: none in certificate", "", "evil"},
		{"no client certificate", verifying, nil, codes.Unauthenticated, "client_cert: no verified client certificate", "", ""},
		{"certificate the listener did not verify", requesting,
			[]tls.Certificate{stranger.Client(t, "leaf", orders)},
			codes.Unauthenticated, "client_cert: no verified client certificate", "", ""},
		{"plaintext", plaintext, nil, codes.Unauthenticated, "client_cert: no verified client certificate", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			creds := grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: ca.Pool(), Certificates: tt.certs}))
			if tt.addr == plaintext {
				creds = grpc.EmptyDialOption{}
			}
			mu.Lock()
			before := len(upstream)
			mu.Unlock()
			_, err := testpb.NewTestServiceClient(proxytest.Dial(t, tt.addr, creds)).UnaryCall(ctx, &testpb.SimpleRequest{})
			st := status.Convert(err)
			if st.Code() != tt.wantCode || st.Message() != tt.wantMsg && tt.wantCode != codes.OK {
				t.Fatalf("UnaryCall() = %v, want %v %q", err, tt.wantCode, tt.wantMsg)
			}
			if tt.mustNotSay != "" && strings.Contains(st.Message(), tt.mustNotSay) {
				t.Errorf("the status message %q reveals the certificate's names", st.Message())
			}
			mu.Lock()
			got := upstream[before:]
			mu.Unlock()
			switch {
			case tt.wantCode != codes.OK && len(got) != 0:
				t.Errorf("a refused call reached the upstream")
			case tt.wantCode == codes.OK && (len(got) != 1 || got[0] != tt.wantIdent):
				t.Errorf("upstream saw x-identity %q, want [%q]", got, tt.wantIdent)
			}
		})
	}
}
