package metadata_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// newHeaders builds the filter or fails the test.
func newHeaders(t testing.TB, cfg metadata.HeadersConfig, opts ...metadata.HeadersOption) pipeline.Filter {
	t.Helper()
	f, err := metadata.NewHeaders(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// recordingBackend starts a backend whose unary and bidi methods report the
// request headers they got, and returns its address and the reports.
func recordingBackend(t testing.TB) (string, <-chan grpcmd.MD) {
	t.Helper()
	seen := make(chan grpcmd.MD, 16)
	record := func(ctx context.Context) {
		md, _ := grpcmd.FromIncomingContext(ctx)
		seen <- md
	}
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			record(ctx)
			return &testpb.SimpleResponse{}, nil
		},
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			record(stream.Context())
			for {
				if _, err := stream.Recv(); err == io.EOF {
					return nil
				} else if err != nil {
					return err
				}
			}
		},
	}
	addr, _ := testbackend.Start(t, svc)
	return addr, seen
}

// received returns the next request headers the backend reported.
func received(t testing.TB, seen <-chan grpcmd.MD) grpcmd.MD {
	t.Helper()
	select {
	case md := <-seen:
		return md
	case <-time.After(10 * time.Second):
		t.Fatal("the backend got no call")
		return nil
	}
}

// testContext returns a context for one test call with outgoing pairs.
func testContext(t testing.TB, pairs ...string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	if len(pairs) > 0 {
		ctx = grpcmd.NewOutgoingContext(ctx, grpcmd.Pairs(pairs...))
	}
	return ctx
}

// expect checks md's values for key; no values means the key is absent.
func expect(t testing.TB, where string, md grpcmd.MD, key string, want ...string) {
	t.Helper()
	got, ok := md[key]
	if len(want) == 0 {
		if ok {
			t.Errorf("%s %s = %q, want it absent", where, key, got)
		}
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s %s = %q, want %q", where, key, got, want)
	}
}

// claimsFromHeader stands in for an authenticating filter: it takes the
// caller's claims from the x-test-sub and x-test-tenant request headers.
var claimsFromHeader = pipeline.RequestHeadersFunc("test.claims", func(_ context.Context, call *pipeline.Call) error {
	sub := call.Inbound.Get("x-test-sub")
	if len(sub) == 0 {
		return nil
	}
	claims := pipeline.Claims{"sub": sub[0], "level": float64(3), "admin": true, "groups": []any{"a", "b"}, "name": "Zoë"}
	if tenant := call.Inbound.Get("x-test-tenant"); len(tenant) > 0 {
		claims["tenant"] = tenant[0]
	}
	pipeline.ClaimsKey.Set(call, claims)
	return nil
})

// TestRequestOps: each request operation, as the backend sees it.
func TestRequestOps(t *testing.T) {
	t.Parallel()
	addr, seen := recordingBackend(t)
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Add: &metadata.HeaderValue{Key: "x-add", Value: "second"}},
		{Add: &metadata.HeaderValue{Key: "x-new-add", Value: "only"}},
		{Set: &metadata.HeaderValue{Key: "x-set", Value: "new"}},
		{Set: &metadata.HeaderValue{Key: "x-bin", Value: "\x00\xff"}},
		{Remove: &metadata.HeaderRemove{Key: "x-remove"}},
		{Rename: &metadata.HeaderRename{Key: "x-old", To: "x-renamed"}},
		{Rename: &metadata.HeaderRename{Key: "x-absent", To: "x-keep"}},
	}})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{f}})

	ctx := testContext(t,
		"x-add", "first",
		"x-set", "old1", "x-set", "old2",
		"x-remove", "gone",
		"x-old", "moved1", "x-old", "moved2",
		"x-keep", "kept",
	)
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	md := received(t, seen)
	expect(t, "upstream", md, "x-add", "first", "second")
	expect(t, "upstream", md, "x-new-add", "only")
	expect(t, "upstream", md, "x-set", "new")
	expect(t, "upstream", md, "x-bin", "\x00\xff")
	expect(t, "upstream", md, "x-remove")
	expect(t, "upstream", md, "x-old")
	expect(t, "upstream", md, "x-renamed", "moved1", "moved2")
	expect(t, "upstream", md, "x-keep", "kept") // renaming an absent header changes nothing
}

// TestRemoveClientHeader: a header the client sent does not reach the
// backend, while later filters still see it in call.Inbound.
func TestRemoveClientHeader(t *testing.T) {
	t.Parallel()
	addr, seen := recordingBackend(t)
	inbound := make(chan []string, 1)
	later := pipeline.RequestHeadersFunc("test.later", func(_ context.Context, call *pipeline.Call) error {
		inbound <- call.Inbound.Get("authorization")
		return nil
	})
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Remove: &metadata.HeaderRemove{Key: "authorization"}},
	}})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{f, later}})

	if _, err := env.Client.UnaryCall(testContext(t, "authorization", "Bearer secret", "x-other", "1"), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	md := received(t, seen)
	expect(t, "upstream", md, "authorization")
	expect(t, "upstream", md, "x-other", "1")
	if got := <-inbound; !slices.Equal(got, []string{"Bearer secret"}) {
		t.Errorf("call.Inbound authorization = %q after the filter, want it unchanged", got)
	}
}

// TestRenameOnly: a filter with one rename works end to end, adds only a
// request header hook to the chain, and needs no messages.
func TestRenameOnly(t *testing.T) {
	t.Parallel()
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Rename: &metadata.HeaderRename{Key: "x-client-id", To: "x-caller"}},
	}})
	chain, err := pipeline.Build([]pipeline.Filter{f}, pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if got := chain.Touches(); got != pipeline.TouchRequestHeaders {
		t.Errorf("Touches() = %b, want only TouchRequestHeaders (%b)", got, pipeline.TouchRequestHeaders)
	}

	addr, seen := recordingBackend(t)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	if _, err := env.Client.UnaryCall(testContext(t, "x-client-id", "c-42"), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	md := received(t, seen)
	expect(t, "upstream", md, "x-client-id")
	expect(t, "upstream", md, "x-caller", "c-42")
}

// TestHooksFollowConfig: each side of the config adds its hook and nothing
// else; no config needs messages.
func TestHooksFollowConfig(t *testing.T) {
	t.Parallel()
	lit := &metadata.HeaderValue{Key: "x-a", Value: "1"}
	tests := []struct {
		name string
		cfg  metadata.HeadersConfig
		want pipeline.Touch
	}{
		{"empty", metadata.HeadersConfig{}, 0},
		{"request", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: lit}}}, pipeline.TouchRequestHeaders},
		{"response", metadata.HeadersConfig{Response: []metadata.HeaderOp{{Set: lit}}}, pipeline.TouchResponseHeaders},
		{"trailers", metadata.HeadersConfig{Trailers: []metadata.HeaderOp{{Set: lit}}}, pipeline.TouchResponseEnd},
		{"all", metadata.HeadersConfig{
			Request:  []metadata.HeaderOp{{Set: lit}},
			Response: []metadata.HeaderOp{{Set: lit}},
			Trailers: []metadata.HeaderOp{{Set: lit}},
		}, pipeline.TouchRequestHeaders | pipeline.TouchResponseHeaders | pipeline.TouchResponseEnd},
	}
	for _, tt := range tests {
		chain, err := pipeline.Build([]pipeline.Filter{newHeaders(t, tt.cfg)}, pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil }))
		if err != nil {
			t.Fatal(err)
		}
		if got := chain.Touches(); got != tt.want || got.NeedsMessages() {
			t.Errorf("%s: Touches() = %b, want %b without messages", tt.name, got, tt.want)
		}
	}
}

// responseOps edits the upstream's response headers or trailers the same
// way for every test: one of each operation, one value from a request
// header.
var responseOps = []metadata.HeaderOp{
	{Add: &metadata.HeaderValue{Key: "x-add", Value: "proxy"}},
	{Set: &metadata.HeaderValue{Key: "x-set", Value: "proxy"}},
	{Remove: &metadata.HeaderRemove{Key: "x-internal"}},
	{Rename: &metadata.HeaderRename{Key: "x-old", To: "x-new"}},
	{Set: &metadata.HeaderValue{Key: "x-request-id", Header: "x-request-id"}},
}

// upstreamMD is what the upstream sends, as headers and as trailers.
func upstreamMD() grpcmd.MD {
	return grpcmd.Pairs("x-add", "upstream", "x-set", "upstream", "x-internal", "secret", "x-old", "v", "x-other", "kept")
}

// checkEdited checks that md went through responseOps.
func checkEdited(t testing.TB, where string, md grpcmd.MD) {
	t.Helper()
	expect(t, where, md, "x-add", "upstream", "proxy")
	expect(t, where, md, "x-set", "proxy")
	expect(t, where, md, "x-internal")
	expect(t, where, md, "x-old")
	expect(t, where, md, "x-new", "v")
	expect(t, where, md, "x-other", "kept")
	expect(t, where, md, "x-request-id", "req-1")
}

func responseFilter(t testing.TB) pipeline.Filter {
	return newHeaders(t, metadata.HeadersConfig{Response: responseOps, Trailers: responseOps})
}

// TestResponseUnary: response header and trailer operations, as a unary
// client sees them.
func TestResponseUnary(t *testing.T) {
	t.Parallel()
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := grpc.SetHeader(ctx, upstreamMD()); err != nil {
				return nil, err
			}
			if err := grpc.SetTrailer(ctx, upstreamMD()); err != nil {
				return nil, err
			}
			return &testpb.SimpleResponse{}, nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{responseFilter(t)}})

	var header, trailer grpcmd.MD
	if _, err := env.Client.UnaryCall(testContext(t, "x-request-id", "req-1"), &testpb.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	checkEdited(t, "header", header)
	checkEdited(t, "trailer", trailer)
}

// TestResponseStreaming: the same operations on server-streaming and bidi
// calls, whose headers go out before the first message.
func TestResponseStreaming(t *testing.T) {
	t.Parallel()
	svc := &testbackend.Service{
		ServerStream: func(req *testpb.StreamingOutputCallRequest, stream testpb.TestService_StreamingOutputCallServer) error {
			if err := stream.SendHeader(upstreamMD()); err != nil {
				return err
			}
			for range 3 {
				if err := stream.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
					return err
				}
			}
			stream.SetTrailer(upstreamMD())
			return nil
		},
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			if err := stream.SendHeader(upstreamMD()); err != nil {
				return err
			}
			for {
				req, err := stream.Recv()
				if err == io.EOF {
					stream.SetTrailer(upstreamMD())
					return nil
				}
				if err != nil {
					return err
				}
				if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
					return err
				}
			}
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{responseFilter(t)}})

	t.Run("server-streaming", func(t *testing.T) {
		s, err := env.Client.StreamingOutputCall(testContext(t, "x-request-id", "req-1"), &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		header, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		checkEdited(t, "header", header)
		n := 0
		for {
			if _, err := s.Recv(); err == io.EOF {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			n++
		}
		if n != 3 {
			t.Errorf("got %d messages, want 3", n)
		}
		checkEdited(t, "trailer", s.Trailer())
	})
	t.Run("bidi", func(t *testing.T) {
		s, err := env.Client.FullDuplexCall(testContext(t, "x-request-id", "req-1"))
		if err != nil {
			t.Fatal(err)
		}
		header, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		checkEdited(t, "header", header)
		for range 2 {
			if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Recv(); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("Recv after CloseSend = %v, want EOF", err)
		}
		checkEdited(t, "trailer", s.Trailer())
	})
}

// TestResponseOnError: when the upstream fails without headers, trailer
// operations still run, the status stays the upstream's, and a header
// operation makes the proxy send headers.
func TestResponseOnError(t *testing.T) {
	t.Parallel()
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := grpc.SetTrailer(ctx, upstreamMD()); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.FailedPrecondition, "not yet")
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{responseFilter(t)}})

	var header, trailer grpcmd.MD
	_, err := env.Client.UnaryCall(testContext(t, "x-request-id", "req-1"), &testpb.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer))
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || st.Message() != "not yet" {
		t.Fatalf("status = %v, want FailedPrecondition \"not yet\"", err)
	}
	checkEdited(t, "trailer", trailer)
	expect(t, "header", header, "x-add", "proxy")
	expect(t, "header", header, "x-set", "proxy")
	expect(t, "header", header, "x-request-id", "req-1")
}

// TestClaims: values from the verified claims that an earlier filter
// stored, with defaults and skips when a claim is missing.
func TestClaims(t *testing.T) {
	t.Parallel()
	addr, seen := recordingBackend(t)
	f := newHeaders(t, metadata.HeadersConfig{
		Request: []metadata.HeaderOp{
			{Set: &metadata.HeaderValue{Key: "x-user", Claim: "sub"}},
			{Set: &metadata.HeaderValue{Key: "x-level", Claim: "level"}},
			{Set: &metadata.HeaderValue{Key: "x-admin", Claim: "admin"}},
			{Set: &metadata.HeaderValue{Key: "x-tenant", Claim: "tenant", Default: "public"}},
			{Set: &metadata.HeaderValue{Key: "x-groups", Claim: "groups"}},           // a list: missing
			{Set: &metadata.HeaderValue{Key: "x-name", Claim: "name", Default: "?"}}, // not ASCII: missing
			{Set: &metadata.HeaderValue{Key: "x-name-bin", Claim: "name"}},           // binary keys take any bytes
			{Add: &metadata.HeaderValue{Key: "x-skip", Claim: "nope"}},
		},
		Response: []metadata.HeaderOp{
			{Set: &metadata.HeaderValue{Key: "x-served-for", Claim: "sub", Default: "anonymous"}},
		},
	})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{claimsFromHeader, f}})

	t.Run("with claims", func(t *testing.T) {
		var header grpcmd.MD
		ctx := testContext(t, "x-test-sub", "alice", "x-test-tenant", "acme", "x-skip", "client")
		if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		md := received(t, seen)
		expect(t, "upstream", md, "x-user", "alice")
		expect(t, "upstream", md, "x-level", "3")
		expect(t, "upstream", md, "x-admin", "true")
		expect(t, "upstream", md, "x-tenant", "acme")
		expect(t, "upstream", md, "x-groups")
		expect(t, "upstream", md, "x-name", "?")
		expect(t, "upstream", md, "x-name-bin", "Zoë")
		expect(t, "upstream", md, "x-skip", "client")
		expect(t, "header", header, "x-served-for", "alice")
	})
	t.Run("without claims", func(t *testing.T) {
		var header grpcmd.MD
		if _, err := env.Client.UnaryCall(testContext(t), &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		md := received(t, seen)
		expect(t, "upstream", md, "x-user")
		expect(t, "upstream", md, "x-tenant", "public")
		expect(t, "upstream", md, "x-name", "?")
		expect(t, "header", header, "x-served-for", "anonymous")
	})
}

// TestOrderRemoveThenSet: removing a header before setting it from a claim
// keeps a client from supplying it when the claim is missing.
func TestOrderRemoveThenSet(t *testing.T) {
	t.Parallel()
	addr, seen := recordingBackend(t)
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Remove: &metadata.HeaderRemove{Key: "x-tenant"}},
		{Set: &metadata.HeaderValue{Key: "x-tenant", Claim: "tenant"}},
	}})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{claimsFromHeader, f}})

	for _, tt := range []struct {
		name  string
		pairs []string
		want  []string
	}{
		{"claim", []string{"x-test-sub", "bob", "x-test-tenant", "acme", "x-tenant", "spoof"}, []string{"acme"}},
		{"no claim", []string{"x-test-sub", "bob", "x-tenant", "spoof"}, nil},
		{"no claims", []string{"x-tenant", "spoof"}, nil},
	} {
		if _, err := env.Client.UnaryCall(testContext(t, tt.pairs...), &testpb.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
		expect(t, tt.name+": upstream", received(t, seen), "x-tenant", tt.want...)
	}
}

// tenantKey is per-call state that a test filter sets for StateString.
var tenantKey = pipeline.NewKey[string]("test.tenant")

// TestCallValues: values from the peer address, the authority, the method,
// another request header, per-call state and a ValueFunc, on both sides;
// with the bidi method as well as unary.
func TestCallValues(t *testing.T) {
	t.Parallel()
	addr, seen := recordingBackend(t)
	setTenant := pipeline.RequestHeadersFunc("test.tenant", func(_ context.Context, call *pipeline.Call) error {
		tenantKey.Set(call, "gold")
		return nil
	})
	peerPort := func(_ context.Context, call *pipeline.Call) (string, bool) {
		if a, ok := call.Peer.(*net.TCPAddr); ok {
			return "tcp", a.Port > 0
		}
		return "", false
	}
	ops := []metadata.HeaderOp{
		{Set: &metadata.HeaderValue{Key: "x-client-ip", From: metadata.FromPeer}},
		{Set: &metadata.HeaderValue{Key: "x-host", From: metadata.FromAuthority}},
		{Set: &metadata.HeaderValue{Key: "x-method", From: metadata.FromMethod}},
		{Add: &metadata.HeaderValue{Key: "x-copy", Header: "x-src"}},
		{Set: &metadata.HeaderValue{Key: "x-agent", Header: "user-agent"}},
		{Set: &metadata.HeaderValue{Key: "x-missing", Header: "x-nothing", Default: "none"}},
		{Set: &metadata.HeaderValue{Key: "x-tenant", Func: metadata.StateString(tenantKey)}},
		{Set: &metadata.HeaderValue{Key: "x-transport", Func: peerPort}},
	}
	f := newHeaders(t, metadata.HeadersConfig{Request: ops, Response: ops})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{setTenant, f}})

	check := func(t *testing.T, where string, md grpcmd.MD, method string) {
		t.Helper()
		expect(t, where, md, "x-client-ip", "127.0.0.1")
		expect(t, where, md, "x-host", env.ProxyAddr)
		expect(t, where, md, "x-method", method)
		expect(t, where, md, "x-copy", "a", "b")
		if ua := md.Get("x-agent"); len(ua) != 1 || len(ua[0]) < len("grpc-go/") || ua[0][:len("grpc-go/")] != "grpc-go/" {
			t.Errorf("%s x-agent = %q, want the client's grpc-go user agent", where, ua)
		}
		expect(t, where, md, "x-missing", "none")
		expect(t, where, md, "x-tenant", "gold")
		expect(t, where, md, "x-transport", "tcp")
	}

	t.Run("unary", func(t *testing.T) {
		var header grpcmd.MD
		if _, err := env.Client.UnaryCall(testContext(t, "x-src", "a", "x-src", "b"), &testpb.SimpleRequest{}, grpc.Header(&header)); err != nil {
			t.Fatal(err)
		}
		check(t, "upstream", received(t, seen), "/grpc.testing.TestService/UnaryCall")
		check(t, "header", header, "/grpc.testing.TestService/UnaryCall")
	})
	t.Run("bidi", func(t *testing.T) {
		s, err := env.Client.FullDuplexCall(testContext(t, "x-src", "a", "x-src", "b"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		header, err := s.Header()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("Recv = %v, want EOF", err)
		}
		check(t, "upstream", received(t, seen), "/grpc.testing.TestService/FullDuplexCall")
		check(t, "header", header, "/grpc.testing.TestService/FullDuplexCall")
	})
}

// serve runs one call with the given request headers through a chain of
// filters to a terminal that records the outbound headers and answers with
// respHeader and respTrailer.
func serve(t *testing.T, filters []pipeline.Filter, call *pipeline.Call, respHeader, respTrailer grpcmd.MD) (out, header, trailer grpcmd.MD) {
	t.Helper()
	terminal := pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		out = call.Header.Copy()
		if respHeader != nil {
			if err := stream.SendHeader(respHeader); err != nil {
				return err
			}
		}
		if respTrailer != nil {
			stream.SetTrailer(respTrailer)
		}
		return nil
	})
	chain, err := pipeline.Build(filters, terminal)
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeStream{ctx: context.Background()}
	if err := chain.Serve(call, s); err != nil {
		t.Fatal(err)
	}
	return out, s.header, s.trailer
}

// fakeStream is the client side of a call served without a network.
type fakeStream struct {
	pipeline.ServerStream
	ctx             context.Context
	header, trailer grpcmd.MD
}

func (s *fakeStream) Context() context.Context      { return s.ctx }
func (s *fakeStream) SetHeader(md grpcmd.MD) error  { s.header = grpcmd.Join(s.header, md); return nil }
func (s *fakeStream) SendHeader(md grpcmd.MD) error { return s.SetHeader(md) }
func (s *fakeStream) SetTrailer(md grpcmd.MD)       { s.trailer = grpcmd.Join(s.trailer, md) }
func (s *fakeStream) SendMsg(any) error             { return errors.New("fakeStream: no messages") }
func (s *fakeStream) RecvMsg(any) error             { return io.EOF }

// TestOrder: operations apply in the order listed, on every side.
func TestOrder(t *testing.T) {
	t.Parallel()
	v := func(key, value string) *metadata.HeaderValue { return &metadata.HeaderValue{Key: key, Value: value} }
	tests := []struct {
		name string
		ops  []metadata.HeaderOp
		want []string // values of x-h, nil for absent
	}{
		{"set then add", []metadata.HeaderOp{{Set: v("x-h", "1")}, {Add: v("x-h", "2")}}, []string{"1", "2"}},
		{"add then set", []metadata.HeaderOp{{Add: v("x-h", "1")}, {Set: v("x-h", "2")}}, []string{"2"}},
		{"add then remove", []metadata.HeaderOp{{Add: v("x-h", "1")}, {Remove: &metadata.HeaderRemove{Key: "x-h"}}}, nil},
		{"remove then add", []metadata.HeaderOp{{Remove: &metadata.HeaderRemove{Key: "x-h"}}, {Add: v("x-h", "1")}}, []string{"1"}},
		{"set then rename away", []metadata.HeaderOp{{Set: v("x-h", "1")}, {Rename: &metadata.HeaderRename{Key: "x-h", To: "x-g"}}}, nil},
		{"rename in then add", []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-g", To: "x-h"}}, {Add: v("x-h", "1")}}, []string{"g", "1"}},
		{"add then rename in", []metadata.HeaderOp{{Add: v("x-h", "1")}, {Rename: &metadata.HeaderRename{Key: "x-g", To: "x-h"}}}, []string{"g"}},
		{"chain of renames", []metadata.HeaderOp{
			{Rename: &metadata.HeaderRename{Key: "x-g", To: "x-f"}},
			{Rename: &metadata.HeaderRename{Key: "x-f", To: "x-h"}},
		}, []string{"g"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newHeaders(t, metadata.HeadersConfig{Request: tt.ops, Response: tt.ops, Trailers: tt.ops})
			start := func() grpcmd.MD { return grpcmd.Pairs("x-h", "h", "x-g", "g") }
			inbound := start()
			call := &pipeline.Call{Method: "/p.S/M", Inbound: inbound, Header: start()}
			out, header, trailer := serve(t, []pipeline.Filter{f}, call, start(), start())
			expect(t, "request", out, "x-h", tt.want...)
			expect(t, "response header", header, "x-h", tt.want...)
			expect(t, "trailer", trailer, "x-h", tt.want...)
			expect(t, "inbound", call.Inbound, "x-h", "h")
			expect(t, "inbound", call.Inbound, "x-g", "g")
		})
	}
}

// TestInboundNeverChanged: no operation changes call.Inbound, and values
// copied from it are copies: a later filter that edits the outbound values
// in place does not reach the inbound view.
func TestInboundNeverChanged(t *testing.T) {
	t.Parallel()
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Set: &metadata.HeaderValue{Key: "x-copy", Header: "x-src"}},
		{Add: &metadata.HeaderValue{Key: "x-src", Value: "added"}},
		{Rename: &metadata.HeaderRename{Key: "x-old", To: "x-new"}},
		{Remove: &metadata.HeaderRemove{Key: "x-gone"}},
	}})
	scribble := pipeline.RequestHeadersFunc("test.scribble", func(_ context.Context, call *pipeline.Call) error {
		for _, v := range call.Header {
			for i := range v {
				v[i] = "scribbled"
			}
		}
		return nil
	})
	inbound := grpcmd.Pairs("x-src", "s", "x-old", "o", "x-gone", "g")
	want := inbound.Copy()
	call := &pipeline.Call{Method: "/p.S/M", Inbound: inbound, Header: pipeline.OutboundHeader(inbound)}
	out, _, _ := serve(t, []pipeline.Filter{f, scribble}, call, nil, nil)
	expect(t, "outbound", out, "x-copy", "scribbled")
	expect(t, "outbound", out, "x-new", "scribbled")
	expect(t, "outbound", out, "x-gone")
	if len(call.Inbound) != len(want) {
		t.Errorf("inbound = %v, want %v", call.Inbound, want)
	}
	for k, v := range want {
		expect(t, "inbound", call.Inbound, k, v...)
	}
}

// TestAddDoesNotWriteSharedValues: adding to a header whose values slice is
// shared with another map (an earlier filter's, say) and has room to grow
// leaves the other map alone.
func TestAddDoesNotWriteSharedValues(t *testing.T) {
	t.Parallel()
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Add: &metadata.HeaderValue{Key: "x-h", Value: "added"}},
	}})
	shared := make([]string, 1, 4)
	shared[0] = "earlier"
	out, _, _ := serve(t, []pipeline.Filter{f}, &pipeline.Call{Header: grpcmd.MD{"x-h": shared}}, nil, nil)
	expect(t, "outbound", out, "x-h", "earlier", "added")
	if got := shared[:2][1]; got != "" {
		t.Errorf("the shared slice's spare room holds %q; add wrote into it", got)
	}
}

// TestUnsendableValuesDropped: values a header cannot carry (text that is
// not printable ASCII) are dropped and logged, never sent: the call goes on.
func TestUnsendableValuesDropped(t *testing.T) {
	t.Parallel()
	bad := func(context.Context, *pipeline.Call) (string, bool) { return "line\nbreak", true }
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Set: &metadata.HeaderValue{Key: "x-bad", Func: bad}},
		{Set: &metadata.HeaderValue{Key: "x-bad-default", Func: bad, Default: "fallback"}},
		{Set: &metadata.HeaderValue{Key: "x-bad-bin", Func: bad}},
		{Add: &metadata.HeaderValue{Key: "x-copy", Header: "x-src-bin"}},
	}})
	inbound := grpcmd.MD{"x-src-bin": {"ok", "\x00"}}
	call := &pipeline.Call{Inbound: inbound, Header: grpcmd.MD{}}
	out, _, _ := serve(t, []pipeline.Filter{f}, call, nil, nil)
	expect(t, "outbound", out, "x-bad")
	expect(t, "outbound", out, "x-bad-default", "fallback")
	expect(t, "outbound", out, "x-bad-bin", "line\nbreak")
	expect(t, "outbound", out, "x-copy", "ok")
}

// strAddr is a net.Addr of another network, known only by its string.
type strAddr string

func (a strAddr) Network() string { return "other" }
func (a strAddr) String() string  { return string(a) }

// TestPeerValue: "from: peer" is the client's IP address alone, and missing
// when the peer has none.
func TestPeerValue(t *testing.T) {
	t.Parallel()
	f := newHeaders(t, metadata.HeadersConfig{Request: []metadata.HeaderOp{
		{Set: &metadata.HeaderValue{Key: "x-ip", From: metadata.FromPeer, Default: "unknown"}},
	}})
	tests := []struct {
		name string
		peer net.Addr
		want string
	}{
		{"IPv4", &net.TCPAddr{IP: net.IPv4(192, 0, 2, 7), Port: 5000}, "192.0.2.7"},
		{"IPv6 with zone", &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"}, "fe80::1"},
		{"IPv4-mapped IPv6", &net.TCPAddr{IP: net.ParseIP("::ffff:198.51.100.1"), Port: 1}, "198.51.100.1"},
		{"other network with host:port", strAddr("[2001:db8::2%lo]:80"), "2001:db8::2"},
		{"other network with an IP", strAddr("203.0.113.9"), "203.0.113.9"},
		{"unix socket", &net.UnixAddr{Name: "/run/manifold.sock", Net: "unix"}, "unknown"},
		{"TCP without IP", &net.TCPAddr{Port: 1}, "unknown"},
		{"typed nil", (*net.TCPAddr)(nil), "unknown"},
		{"none", nil, "unknown"},
	}
	for _, tt := range tests {
		out, _, _ := serve(t, []pipeline.Filter{f}, &pipeline.Call{Peer: tt.peer, Header: grpcmd.MD{}}, nil, nil)
		expect(t, tt.name+": outbound", out, "x-ip", tt.want)
	}
}
