package e2e

import (
	"crypto/rand"
	"net"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/server"
)

// badInputEnv is a config-built proxy in front of an echo backend, with a
// real client that checks the proxy still serves after each bad input.
type badInputEnv struct {
	be *backend
	p  *proxy
	cc *grpc.ClientConn
}

func newBadInputEnv(t *testing.T) *badInputEnv {
	t.Helper()
	be := startBackend(t, &testbackend.Service{})
	p := startProxy(t, oneToOne(target(be.addr)))
	e := &badInputEnv{be: be, p: p, cc: dial(t, p.addr)}
	mustWork(t, e.cc)
	return e
}

// checkGRPCStatus fails unless res ended with grpc-status code and a
// message containing msg.
func checkGRPCStatus(t *testing.T, res rawResult, code codes.Code, msg string) {
	t.Helper()
	if res.grpcStatus != itoa(int(code)) || !strings.Contains(res.grpcMessage, msg) {
		t.Errorf("got %v; want grpc-status %d (%v) with a message containing %q", res, code, code, msg)
	}
}

func itoa(n int) string {
	const digits = "0123456789"
	if n < 10 {
		return digits[n : n+1]
	}
	return itoa(n/10) + digits[n%10:n%10+1]
}

// TestBadInputMethodPaths: requests whose :path is not /service/method end
// with UNIMPLEMENTED naming the problem, never reach the upstream, and
// leave the connection and the proxy serving. A path with dot segments
// (/pkg.Public/../pkg.Admin/Delete) must not slip past prefix routes to an
// upstream that would normalize it.
func TestBadInputMethodPaths(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	raw := dialRaw(t, e.p.addr)
	before := e.be.calls.Load()
	for _, tc := range []struct {
		path string
		msg  string // in grpc-message
	}{
		{"/", "malformed method name"},
		{"//", "malformed method name"},
		{"/a", "malformed method name"},
		{"/../x", "malformed method name"},
		{"no-slash", "malformed method name"},
		{"/grpc.testing.TestService/../UnaryCall", "malformed method name"},
		{"/grpc.testing.TestService/UnaryCall/extra", "malformed method name"},
		{"/grpc.testing.TestService/%2e%2e", "malformed method name"},
		{"/./UnaryCall", "malformed method name"},
		{"/grpc.testing.TestService/Unary Call", "malformed method name"},
	} {
		t.Run(tc.path, func(t *testing.T) {
			id := raw.request(grpcHeaders(tc.path), false)
			raw.data(id, true, grpcFrame(false, 0, nil))
			checkGRPCStatus(t, raw.result(id), codes.Unimplemented, tc.msg)
		})
	}
	if n := e.be.calls.Load() - before; n != 0 {
		t.Errorf("the backend got %d of the malformed calls", n)
	}
	// The same raw connection still carries a good call, and so does a
	// grpc-go client.
	id := raw.request(grpcHeaders(unaryMethod), false)
	raw.data(id, true, grpcFrame(false, 0, nil))
	if res := raw.result(id); res.grpcStatus != "0" {
		t.Errorf("good call on the same connection: %v", res)
	}
	mustWork(t, e.cc)
}

// TestBadInputOversizedMetadata: request metadata larger than the
// listener's header list limit (server.DefaultMaxHeaderListSize, which the
// proxy advertises in SETTINGS) is refused — grpc-go clients refuse to
// send it (INTERNAL), and a raw client that ignores the setting gets the
// stream reset — and never reaches the upstream; metadata within the
// proxy's limit but over the upstream's gets a clear status too. The next
// call works after each.
func TestBadInputOversizedMetadata(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("a", 2*server.DefaultMaxHeaderListSize)
	e := newBadInputEnv(t)
	before := e.be.calls.Load()

	t.Run("grpc-go client", func(t *testing.T) {
		ctx := metadata.AppendToOutgoingContext(t.Context(), "x-big", big)
		err := e.cc.Invoke(ctx, unaryMethod, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{})
		if s := status.Convert(err); s.Code() != codes.Internal || !strings.Contains(s.Message(), "header list size") {
			t.Errorf("oversized metadata: %v; want INTERNAL about the header list size", err)
		}
		mustWork(t, e.cc)
	})
	for _, tc := range []struct {
		name  string
		pairs []string
	}{
		{"raw client, one huge value", []string{"x-big", big}},
		{"raw client, many values", func() (pairs []string) {
			for i := range 8 {
				pairs = append(pairs, "x-big-"+itoa(i), big[:server.DefaultMaxHeaderListSize/4])
			}
			return pairs
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A client that ignores the advertised limit gets its stream
			// reset (FRAME_SIZE_ERROR) or, when it keeps sending
			// CONTINUATION frames past the limit or one value exceeds it,
			// its connection closed (x/net/http2's guard against header
			// floods). Either way the proxy serves the next call.
			raw := dialRaw(t, e.p.addr)
			id := raw.request(grpcHeaders(unaryMethod, tc.pairs...), false)
			raw.data(id, true, grpcFrame(false, 0, nil))
			res := raw.result(id)
			reset := res.rst != nil && *res.rst == http2.ErrCodeFrameSize
			if !reset && res.closed == nil && res.goAway == nil {
				t.Errorf("oversized metadata: %v; want RST_STREAM FRAME_SIZE_ERROR or the connection closed", res)
			}
			mustWork(t, e.cc)
		})
	}
	if n := e.be.calls.Load() - before; n != 3 {
		t.Errorf("the backend got %d calls, want the 3 good ones only", n)
	}

	t.Run("over the upstream's limit", func(t *testing.T) {
		small := startBackendOpts(t, &testbackend.Service{}, grpc.MaxHeaderListSize(1024))
		p := startProxy(t, oneToOne(target(small.addr)))
		cc := dial(t, p.addr)
		mustWork(t, cc)
		ctx := metadata.AppendToOutgoingContext(t.Context(), "x-big", strings.Repeat("a", 4096))
		err := cc.Invoke(ctx, unaryMethod, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{})
		if s := status.Convert(err); s.Code() != codes.Internal || !strings.Contains(s.Message(), "header list size") {
			t.Errorf("metadata over the upstream's limit: %v; want INTERNAL about the header list size", err)
		}
		if n := small.calls.Load(); n != 1 {
			t.Errorf("the small backend got %d calls, want the good one only", n)
		}
		mustWork(t, cc)
	})
}

// TestBadInputUnknownEncoding: a message compressed with an encoding the
// proxy does not know (grpc-encoding: br) gets UNIMPLEMENTED naming it,
// from grpc-go, and the next call works.
func TestBadInputUnknownEncoding(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	raw := dialRaw(t, e.p.addr)
	id := raw.request(grpcHeaders(unaryMethod, "grpc-encoding", "br"), false)
	raw.data(id, true, grpcFrame(true, 4, []byte{1, 2, 3, 4}))
	checkGRPCStatus(t, raw.result(id), codes.Unimplemented, `"br"`)
	mustWork(t, e.cc)
}

// TestBadInputHugeDeclaredMessage: a client that declares a 2 GiB message
// (length prefix 0x80000000) and sends nothing more gets
// RESOURCE_EXHAUSTED at once — the proxy does not wait for, or allocate,
// the 2 GiB — and the next call works.
func TestBadInputHugeDeclaredMessage(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	raw := dialRaw(t, e.p.addr)
	id := raw.request(grpcHeaders(unaryMethod), false)
	raw.data(id, false, grpcFrame(false, 0x80000000, nil))
	checkGRPCStatus(t, raw.result(id), codes.ResourceExhausted, "larger than max")
	mustWork(t, e.cc)
}

// TestBadInputTruncatedMessage: a message whose prefix declares 100 bytes
// of which 10 arrive before the client half-closes ends with INTERNAL
// (unexpected EOF) rather than a hang, and the next call works.
func TestBadInputTruncatedMessage(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	raw := dialRaw(t, e.p.addr)
	id := raw.request(grpcHeaders(unaryMethod), false)
	raw.data(id, true, grpcFrame(false, 100, make([]byte, 10)))
	checkGRPCStatus(t, raw.result(id), codes.Internal, "EOF")
	mustWork(t, e.cc)
}

// TestBadInputPlainHTTP2Request: a plain HTTP/2 GET (no gRPC content-type)
// on the gRPC listener gets HTTP 415 with a gRPC status explaining it, not
// an upstream call, and the next call works.
func TestBadInputPlainHTTP2Request(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	before := e.be.calls.Load()
	raw := dialRaw(t, e.p.addr)
	id := raw.request([]string{":method", "GET", ":scheme", "http", ":path", "/", ":authority", "manifold.test"}, true)
	res := raw.result(id)
	if res.httpStatus != "415" || res.grpcStatus != itoa(int(codes.InvalidArgument)) || !strings.Contains(res.grpcMessage, "content-type") {
		t.Errorf("plain GET: %v; want :status 415 and INVALID_ARGUMENT about the content-type", res)
	}
	if n := e.be.calls.Load() - before; n != 0 {
		t.Errorf("the backend got %d calls", n)
	}
	mustWork(t, e.cc)
}

// TestBadInputGarbageBytes: bytes that are not HTTP/2 — random bytes, an
// HTTP/1.1 request, a correct preface followed by a frame that is a
// connection error — make the proxy close the connection instead of
// holding it open, and the next call works.
func TestBadInputGarbageBytes(t *testing.T) {
	t.Parallel()
	e := newBadInputEnv(t)
	random := make([]byte, 4096)
	_, _ = rand.Read(random)
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"random", random},
		{"http1", []byte("GET / HTTP/1.1\r\nHost: manifold.test\r\n\r\n")},
		// DATA on stream 0 is a connection error (RFC 9113, 6.1).
		{"preface then DATA on stream 0", append([]byte(http2.ClientPreface), 0, 0, 4, byte(http2.FrameData), 0, 0, 0, 0, 0, 1, 2, 3, 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", e.p.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			readUntilClosed(t, c)
			mustWork(t, e.cc)
		})
	}
}
