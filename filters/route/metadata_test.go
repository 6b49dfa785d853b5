package route_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// allBytes holds every byte value once.
func allBytes() string {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return string(b)
}

// TestMetadataBothWays sends ASCII and binary metadata (every byte value)
// through the proxy as request headers, and gets them back as response
// headers and trailers.
func TestMetadataBothWays(t *testing.T) {
	bin := allBytes()
	var seen metadata.MD
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			seen, _ = metadata.FromIncomingContext(ctx)
			if err := grpc.SetHeader(ctx, metadata.Pairs("h-ascii", "header value", "h-bin", bin)); err != nil {
				return nil, err
			}
			if err := grpc.SetTrailer(ctx, metadata.Pairs("t-ascii", "trailer value", "t-bin", bin, "t-multi", "a", "t-multi", "b")); err != nil {
				return nil, err
			}
			return &testpb.SimpleResponse{}, nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(
		"r-ascii", "some value !\"#$%&'()*+,-./~",
		"r-bin", bin,
		"r-multi", "1", "r-multi", "2",
	))
	var header, trailer metadata.MD
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}

	checks := []struct {
		where string
		md    metadata.MD
		key   string
		want  []string
	}{
		{"request", seen, "r-ascii", []string{"some value !\"#$%&'()*+,-./~"}},
		{"request", seen, "r-bin", []string{bin}},
		{"request", seen, "r-multi", []string{"1", "2"}},
		{"header", header, "h-ascii", []string{"header value"}},
		{"header", header, "h-bin", []string{bin}},
		{"trailer", trailer, "t-ascii", []string{"trailer value"}},
		{"trailer", trailer, "t-bin", []string{bin}},
		{"trailer", trailer, "t-multi", []string{"a", "b"}},
	}
	for _, c := range checks {
		got := c.md.Get(c.key)
		if len(got) != len(c.want) {
			t.Errorf("%s %s = %q, want %q", c.where, c.key, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%s %s[%d] = %q, want %q", c.where, c.key, i, got[i], c.want[i])
			}
		}
	}
}

// TestHopByHopAndInternalHeadersStripped checks that connection-level and
// Manifold-internal request headers never reach the upstream.
func TestHopByHopAndInternalHeadersStripped(t *testing.T) {
	var seen metadata.MD
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			seen, _ = metadata.FromIncomingContext(ctx)
			return &testpb.SimpleResponse{}, nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx := metadata.AppendToOutgoingContext(context.Background(),
		"x-manifold-route", "spoofed", "keep-alive", "1", "proxy-connection", "x", "upgrade", "h2c", "kept", "yes")
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"x-manifold-route", "keep-alive", "proxy-connection", "upgrade"} {
		if v := seen.Get(k); len(v) > 0 {
			t.Errorf("upstream saw %s = %q; want it stripped", k, v)
		}
	}
	if v := seen.Get("kept"); len(v) != 1 || v[0] != "yes" {
		t.Errorf("upstream saw kept = %q, want [yes]", v)
	}
}

// TestHeaderBeforeFailure: an upstream that sends headers and then fails
// without a message. The client must get those headers (grpc-proxy lost
// them), for every call kind.
func TestHeaderBeforeFailure(t *testing.T) {
	fail := func(ctx context.Context) error {
		if err := grpc.SendHeader(ctx, metadata.Pairs("early", "yes")); err != nil {
			return err
		}
		return status.Error(codes.FailedPrecondition, "after header")
	}
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			return nil, fail(ctx)
		},
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			return fail(s.Context())
		},
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error { return fail(s.Context()) },
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	check := func(kind string, header metadata.MD, err error) {
		t.Helper()
		if status.Code(err) != codes.FailedPrecondition {
			t.Errorf("%s: err = %v, want FailedPrecondition", kind, err)
		}
		if v := header.Get("early"); len(v) != 1 || v[0] != "yes" {
			t.Errorf("%s: header early = %q, want [yes]; header %v", kind, v, header)
		}
	}

	var header metadata.MD
	_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&header))
	check("unary", header, err)

	ss, err := env.Client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h, herr := ss.Header()
	if herr != nil {
		t.Fatal(herr)
	}
	_, err = ss.Recv()
	check("server stream", h, err)

	bs, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h, herr = bs.Header()
	if herr != nil {
		t.Fatal(herr)
	}
	_, err = bs.Recv()
	check("bidi", h, err)
}

// TestStatusPassesThrough compares status code, message, details and
// trailers for direct and proxied calls: trailers-only errors, errors after
// messages, and OK.
func TestStatusPassesThrough(t *testing.T) {
	detailed := status.New(codes.ResourceExhausted, "quota: 0 left ü %25 \n newline")
	detailed, err := detailed.WithDetails(&testpb.Payload{Body: []byte{0, 1, 2, 255}}, &testpb.SimpleRequest{ResponseSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("why-bin", "\x00\xff", "why", "because"))
			return nil, detailed.Err()
		},
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			for i := 0; i < 3; i++ {
				if err := s.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
					return err
				}
			}
			s.SetTrailer(metadata.Pairs("sent", "3"))
			return detailed.Err()
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	type result struct {
		st      *status.Status
		header  metadata.MD
		trailer metadata.MD
		msgs    int
	}
	unary := func(c testpb.TestServiceClient) result {
		var r result
		_, err := c.UnaryCall(ctx, &testpb.SimpleRequest{}, grpc.Header(&r.header), grpc.Trailer(&r.trailer))
		r.st = status.Convert(err)
		return r
	}
	stream := func(c testpb.TestServiceClient) result {
		var r result
		s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err = s.Recv(); err != nil {
				break
			}
			r.msgs++
		}
		r.st = status.Convert(err)
		r.header, _ = s.Header()
		r.trailer = s.Trailer()
		return r
	}
	for name, call := range map[string]func(testpb.TestServiceClient) result{"trailers-only": unary, "after messages": stream} {
		d, p := call(env.Direct), call(env.Client)
		if !bytes.Equal(mustMarshal(t, d.st), mustMarshal(t, p.st)) {
			t.Errorf("%s: status differs:\n direct %v\n proxy  %v", name, d.st.Proto(), p.st.Proto())
		}
		if p.st.Code() != codes.ResourceExhausted || len(p.st.Details()) != 2 {
			t.Errorf("%s: proxied status %v with %d details", name, p.st.Proto(), len(p.st.Details()))
		}
		if d.msgs != p.msgs {
			t.Errorf("%s: %d messages direct, %d proxied", name, d.msgs, p.msgs)
		}
		if !equalMD(d.trailer, p.trailer) {
			t.Errorf("%s: trailer direct %v, proxy %v", name, d.trailer, p.trailer)
		}
		if len(d.header) != len(p.header) {
			t.Errorf("%s: header direct %v, proxy %v", name, d.header, p.header)
		}
	}
}

func mustMarshal(t *testing.T, s *status.Status) []byte {
	t.Helper()
	b, err := protoMarshal(s.Proto())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// equalMD compares metadata, ignoring keys grpc-go adds per hop.
func equalMD(a, b metadata.MD) bool {
	strip := func(md metadata.MD) metadata.MD {
		out := metadata.MD{}
		for k, v := range md {
			if k == "content-type" {
				continue
			}
			out[k] = v
		}
		return out
	}
	a, b = strip(a), strip(b)
	if len(a) != len(b) {
		return false
	}
	for k, av := range a {
		bv := b[k]
		if len(av) != len(bv) {
			return false
		}
		for i := range av {
			if av[i] != bv[i] {
				return false
			}
		}
	}
	return true
}
