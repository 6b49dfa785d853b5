package clientcert_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/url"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/clientcert"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Build the filter for a route that admits one namespace's SPIFFE IDs and
// a DNS wildcard, then run it on calls whose connections verified various
// client certificates, as the proxy would.
func Example() {
	f, err := clientcert.New(clientcert.Config{
		URIs:     []string{"spiffe://cluster.local/ns/orders/*"},
		DNSNames: []string{"*.internal.example.com"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	// call runs the filter on a call from a connection whose handshake
	// verified leaf (none when nil).
	call := func(leaf *x509.Certificate) {
		var state tls.ConnectionState
		if leaf != nil {
			state.VerifiedChains = [][]*x509.Certificate{{leaf}}
		}
		ctx := peer.NewContext(context.Background(), &peer.Peer{AuthInfo: credentials.TLSInfo{State: state}})
		c := &pipeline.Call{Method: "/orders.v1.Orders/Get"}
		if err := f.OnRequestHeaders(ctx, c); err != nil {
			st := status.Convert(err)
			fmt.Printf("%v: %s\n", st.Code(), st.Message())
			return
		}
		id, _ := clientcert.IdentityKey.Get(c)
		fmt.Println("allowed:", id)
	}
	spiffe := func(id string) *x509.Certificate {
		u, _ := url.Parse(id)
		return &x509.Certificate{URIs: []*url.URL{u}}
	}

	call(spiffe("spiffe://cluster.local/ns/orders/sa/api"))
	call(&x509.Certificate{DNSNames: []string{"batch.internal.example.com"}})
	call(spiffe("spiffe://cluster.local/ns/payments/sa/api"))
	call(&x509.Certificate{DNSNames: []string{"a.b.internal.example.com"}})
	call(nil)
	// Output:
	// allowed: uri:spiffe://cluster.local/ns/orders/sa/api
	// allowed: dns:batch.internal.example.com
	// PermissionDenied: client_cert: certificate not allowed: uri: none matches; dns: none in certificate
	// PermissionDenied: client_cert: certificate not allowed: uri: none in certificate; dns: none matches
	// Unauthenticated: client_cert: no verified client certificate
}

// Match a certificate's SANs without the filter.
func ExampleMatcher_Match() {
	m, err := clientcert.NewMatcher(clientcert.Config{IPs: []string{"10.0.0.0/8"}, Emails: []string{"@example.com"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, cert := range []*x509.Certificate{
		{EmailAddresses: []string{"ops@example.com"}},
		{EmailAddresses: []string{"ops@example.org"}},
	} {
		if id, ok, reason := m.Match(cert); ok {
			fmt.Println("allowed:", id)
		} else {
			fmt.Println("refused:", reason)
		}
	}
	// Output:
	// allowed: email:ops@example.com
	// refused: email: none matches; ip: none in certificate
}
