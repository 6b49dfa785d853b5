package clientcert

import (
	"context"
	"crypto/x509"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

// IdentityKey holds the SAN that let a call through, for later filters and
// access logs. It is set only on calls the filter allowed.
var IdentityKey = pipeline.NewKey[Identity]("clientcert.identity")

// Filter is the client_cert filter. It is safe for concurrent use.
type Filter struct {
	m *Matcher
}

// New builds the filter, failing as [Config.Validate] does.
func New(cfg Config) (*Filter, error) {
	m, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	return &Filter{m: m}, nil
}

// Name returns "client_cert".
func (f *Filter) Name() string { return Name }

// OnRequestHeaders lets the call on when the connection's verified client
// certificate has an allowed SAN, and ends it otherwise: UNAUTHENTICATED
// without a verified certificate, PERMISSION_DENIED with one that is not
// allowed.
func (f *Filter) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	leaf := verifiedLeaf(ctx)
	if leaf == nil {
		return status.Error(codes.Unauthenticated, "client_cert: no verified client certificate")
	}
	id, ok, reason := f.m.Match(leaf)
	if !ok {
		return status.Error(codes.PermissionDenied, "client_cert: certificate not allowed: "+reason)
	}
	IdentityKey.Set(call, id)
	return nil
}

// verifiedLeaf returns the client certificate that the TLS handshake of
// the call's connection verified, or nil.
func verifiedLeaf(ctx context.Context) *x509.Certificate {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.VerifiedChains) == 0 || len(info.State.VerifiedChains[0]) == 0 {
		return nil
	}
	return info.State.VerifiedChains[0][0]
}

var _ pipeline.RequestHeadersHook = (*Filter)(nil)
