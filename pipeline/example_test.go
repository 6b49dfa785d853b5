package pipeline_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// A header-only filter is one function. It costs nothing on the message
// path: the chain reports that it needs no messages.
func ExampleRequestHeadersFunc() {
	env := pipeline.RequestHeadersFunc("env", func(_ context.Context, call *pipeline.Call) error {
		call.Header.Set("x-env", "production") // the outbound copy, never call.Inbound
		return nil
	})

	terminal := pipeline.HandlerFunc(func(call *pipeline.Call, _ pipeline.ServerStream) error {
		fmt.Println("upstream gets x-env:", call.Header.Get("x-env"))
		return nil
	})
	chain, err := pipeline.Build([]pipeline.Filter{env}, terminal)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("needs messages:", chain.Touches().NeedsMessages())

	call := &pipeline.Call{Method: "/demo.Greeter/Hello", Header: metadata.MD{}}
	fmt.Println("status:", status.Code(chain.Serve(call, printStream{})))
	// Output:
	// needs messages: false
	// upstream gets x-env: [production]
	// status: OK
}

// tenantKey holds the tenant that tenantFilter accepted, for later filters.
var tenantKey = pipeline.NewKey[string]("tenant")

// tenantFilter is a filter type with two hooks: it rejects calls without an
// allowed x-tenant request header, and names the tenant in a response
// header.
type tenantFilter struct {
	allowed map[string]bool
}

// Name implements pipeline.Filter.
func (*tenantFilter) Name() string { return "tenant" }

// OnRequestHeaders implements pipeline.RequestHeadersHook.
func (f *tenantFilter) OnRequestHeaders(_ context.Context, call *pipeline.Call) error {
	t := call.Inbound.Get("x-tenant")
	if len(t) == 0 || !f.allowed[t[0]] {
		return status.Errorf(codes.PermissionDenied, "tenant: %q may not call %s", t, call.Method)
	}
	tenantKey.Set(call, t[0])
	return nil
}

// OnResponseHeaders implements pipeline.ResponseHeadersHook.
func (f *tenantFilter) OnResponseHeaders(_ context.Context, call *pipeline.Call, header metadata.MD) error {
	if t, ok := tenantKey.Get(call); ok {
		header.Set("x-served-tenant", t)
	}
	return nil
}

var (
	_ pipeline.RequestHeadersHook  = (*tenantFilter)(nil)
	_ pipeline.ResponseHeadersHook = (*tenantFilter)(nil)
)

// A filter type implements the hook interfaces it needs; interface guards
// catch a mistyped method at compile time.
func ExampleRequestHeadersHook() {
	tenants := &tenantFilter{allowed: map[string]bool{"acme": true}}
	terminal := pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
		return nil // a real terminal forwards the call upstream
	})
	chain, err := pipeline.Build([]pipeline.Filter{tenants}, terminal)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, tenant := range []string{"acme", "globex"} {
		call := &pipeline.Call{
			Method:  "/demo.Greeter/Hello",
			Inbound: metadata.Pairs("x-tenant", tenant),
			Header:  metadata.MD{},
		}
		fmt.Println(tenant, "->", chain.Serve(call, printStream{}))
	}
	// Output:
	// header: x-served-tenant=["acme"]
	// acme -> <nil>
	// globex -> rpc error: code = PermissionDenied desc = tenant: ["globex"] may not call /demo.Greeter/Hello
}

// Assembling a proxy: filters, outermost first, around a route terminal to
// an upstream, served by a Manifold server. Here the upstream and the proxy
// listen in memory.
func ExampleBuild() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// The upstream: grpc-go's test service, answering in memory.
	backendLis := bufconn.Listen(1 << 20)
	backend := grpc.NewServer()
	testpb.RegisterTestServiceServer(backend, exampleBackend{})
	go func() { _ = backend.Serve(backendLis) }()
	defer backend.Stop()
	upstream, err := grpc.NewClient("passthrough:///backend",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return backendLis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer upstream.Close()

	// The chain, built once: A ─► B ─► terminal.
	chain, err := pipeline.Build([]pipeline.Filter{
		pipeline.RequestHeadersFunc("env", func(_ context.Context, call *pipeline.Call) error {
			call.Header.Set("x-env", "production")
			return nil
		}),
		&tenantFilter{allowed: map[string]bool{"acme": true}},
	}, route.NewConn("backend", upstream))
	if err != nil {
		fmt.Println(err)
		return
	}
	proxy, err := server.New(chain, server.WithForwardedFor(false))
	if err != nil {
		fmt.Println(err)
		return
	}
	proxyLis := bufconn.Listen(1 << 20)
	go func() { _ = proxy.Serve(proxyLis) }()
	defer func() { _ = proxy.Shutdown(ctx) }()

	// A client of the proxy.
	conn, err := grpc.NewClient("passthrough:///proxy",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return proxyLis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)

	var header metadata.MD
	resp, err := client.UnaryCall(metadata.AppendToOutgoingContext(ctx, "x-tenant", "acme"),
		&testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello")}}, grpc.Header(&header))
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("%s, served for %s\n", resp.GetPayload().GetBody(), header.Get("x-served-tenant"))

	_, err = client.UnaryCall(ctx, &testpb.SimpleRequest{})
	fmt.Println(status.Code(err))
	// Output:
	// hello from production, served for [acme]
	// PermissionDenied
}

// exampleBackend answers UnaryCall with its payload and the x-env request
// header.
type exampleBackend struct {
	testpb.UnimplementedTestServiceServer
}

func (exampleBackend) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	body := fmt.Sprintf("%s from %s", req.GetPayload().GetBody(), md.Get("x-env")[0])
	return &testpb.SimpleResponse{Payload: &testpb.Payload{Body: []byte(body)}}, nil
}

// printStream stands in for a client's stream in examples that serve a call
// without a network: it prints the headers and trailers the chain sends.
type printStream struct{ pipeline.ServerStream }

func (printStream) Context() context.Context { return context.Background() }

func (printStream) SetHeader(md metadata.MD) error {
	fmt.Println("header:", formatMD(md))
	return nil
}

func (s printStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }

func (printStream) SetTrailer(md metadata.MD) { fmt.Println("trailer:", formatMD(md)) }

// formatMD prints md's keys in order with their values; metadata.MD's own
// String hides values.
func formatMD(md metadata.MD) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(md)) {
		fmt.Fprintf(&b, "%s=%q ", k, md[k])
	}
	return strings.TrimSpace(b.String())
}
