package metadata_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	grpcmd "google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Forward the caller's verified subject upstream in a header no client can
// forge, drop the client's token, and tell the client which proxy method
// served it.
func ExampleNewHeaders() {
	headers, err := metadata.NewHeaders(metadata.HeadersConfig{
		Request: []metadata.HeaderOp{
			{Remove: &metadata.HeaderRemove{Key: "authorization"}},
			{Remove: &metadata.HeaderRemove{Key: "x-user"}}, // a client's own x-user never passes
			{Set: &metadata.HeaderValue{Key: "x-user", Claim: "sub"}},
			{Set: &metadata.HeaderValue{Key: "x-tenant", Claim: "tenant", Default: "public"}},
			{Rename: &metadata.HeaderRename{Key: "x-trace", To: "x-request-id"}},
		},
		Response: []metadata.HeaderOp{
			{Add: &metadata.HeaderValue{Key: "x-served-by", Value: "manifold"}},
		},
		Trailers: []metadata.HeaderOp{
			{Remove: &metadata.HeaderRemove{Key: "x-debug"}},
			{Set: &metadata.HeaderValue{Key: "x-method", From: metadata.FromMethod}},
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}

	// An authenticating filter would store the verified claims.
	auth := pipeline.RequestHeadersFunc("auth", func(_ context.Context, call *pipeline.Call) error {
		pipeline.ClaimsKey.Set(call, pipeline.Claims{"sub": "alice"})
		return nil
	})
	// The upstream, in place of a real one.
	upstream := pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		fmt.Println("upstream gets:", formatMD(call.Header))
		if err := stream.SendHeader(grpcmd.Pairs("x-version", "1.2")); err != nil {
			return err
		}
		stream.SetTrailer(grpcmd.Pairs("x-debug", "db=primary"))
		return nil
	})
	chain, err := pipeline.Build([]pipeline.Filter{auth, headers}, upstream)
	if err != nil {
		fmt.Println(err)
		return
	}

	inbound := grpcmd.Pairs("authorization", "Bearer eyJhbGciOi", "x-user", "root", "x-trace", "t-1")
	call := &pipeline.Call{Method: "/shop.Cart/Checkout", Inbound: inbound, Header: pipeline.OutboundHeader(inbound)}
	if err := chain.Serve(call, printStream{}); err != nil {
		fmt.Println(err)
	}
	fmt.Println("client sent:", formatMD(call.Inbound))
	// Output:
	// upstream gets: x-request-id=["t-1"] x-tenant=["public"] x-user=["alice"]
	// client gets header: x-served-by=["manifold"] x-version=["1.2"]
	// client gets trailer: x-method=["/shop.Cart/Checkout"]
	// client sent: authorization=["Bearer eyJhbGciOi"] x-trace=["t-1"] x-user=["root"]
}

// Validate names every bad field by its path in the config file.
func ExampleHeadersConfig_Validate() {
	cfg := metadata.HeadersConfig{
		Request: []metadata.HeaderOp{
			{Set: &metadata.HeaderValue{Key: "x-user", Claim: "sub"}},
			{Set: &metadata.HeaderValue{Key: "grpc-timeout", Value: "1S"}},
			{Rename: &metadata.HeaderRename{Key: "X-Trace", To: "x-request-id"}},
		},
		Trailers: []metadata.HeaderOp{
			{Set: &metadata.HeaderValue{Key: "grpc-status-details-bin", Value: "x"}},
		},
	}
	fmt.Println(cfg.Validate())
	// Output:
	// request[1].set.key: "grpc-timeout" is reserved
	// request[2].rename.key: "X-Trace" must be lowercase
	// trailers[0].set.key: "grpc-status-details-bin" is reserved
}

// printStream stands in for the client's stream: it prints what the client
// would get.
type printStream struct{ pipeline.ServerStream }

func (printStream) Context() context.Context { return context.Background() }

func (printStream) SetHeader(md grpcmd.MD) error {
	fmt.Println("client gets header:", formatMD(md))
	return nil
}

func (s printStream) SendHeader(md grpcmd.MD) error { return s.SetHeader(md) }

func (printStream) SetTrailer(md grpcmd.MD) { fmt.Println("client gets trailer:", formatMD(md)) }

// formatMD prints md's keys in order with their values.
func formatMD(md grpcmd.MD) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(md)) {
		fmt.Fprintf(&b, "%s=%q ", k, md[k])
	}
	return strings.TrimSpace(b.String())
}
