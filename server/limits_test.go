package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// TestMaxHeaderListSize checks, with a grpc-go client through the proxy,
// that a request whose headers exceed the limit fails with INTERNAL naming
// the limit and never reaches the upstream, and that the next call, on the
// same connection and on a new one, works. It checks the default limit
// too.
func TestMaxHeaderListSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		opts     []server.Option
		size     int // of one header value
		wantCode codes.Code
		wantMsg  string
	}{
		{"under a 4 KiB limit", []server.Option{server.WithMaxHeaderListSize(4 << 10)}, 2 << 10, codes.OK, ""},
		{"over a 4 KiB limit", []server.Option{server.WithMaxHeaderListSize(4 << 10)}, 8 << 10, codes.Internal,
			"header list size to send violates the maximum size (4096 bytes) set by server"},
		{"under the default", nil, 48 << 10, codes.OK, ""},
		{"over the default", nil, 80 << 10, codes.Internal,
			"header list size to send violates the maximum size (65536 bytes) set by server"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var upstreamCalls atomic.Int32
			addr, _ := testbackend.Start(t, &testbackend.Service{
				Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
					upstreamCalls.Add(1)
					return &testpb.SimpleResponse{}, nil
				},
			})
			env := proxytest.Start(t, addr, proxytest.Config{ServerOptions: tt.opts})
			ctx := testContext(t)

			big := metadata.AppendToOutgoingContext(ctx, "x-big", strings.Repeat("v", tt.size))
			_, err := env.Client.UnaryCall(big, &testpb.SimpleRequest{})
			st := status.Convert(err)
			if st.Code() != tt.wantCode || !strings.Contains(st.Message(), tt.wantMsg) {
				t.Fatalf("call with a %d-byte header: %v, want %v %q", tt.size, err, tt.wantCode, tt.wantMsg)
			}
			wantCalls := int32(1)
			if tt.wantCode != codes.OK {
				wantCalls = 0
			}
			if got := upstreamCalls.Load(); got != wantCalls {
				t.Errorf("upstream saw %d calls, want %d", got, wantCalls)
			}

			if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Errorf("next call on the same connection: %v", err)
			}
			fresh := testpb.NewTestServiceClient(proxytest.Dial(t, env.ProxyAddr))
			if _, err := fresh.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
				t.Errorf("next call on a new connection: %v", err)
			}
		})
	}
}

// TestMaxConcurrentStreams checks, with a grpc-go client through the
// proxy, that streams beyond the limit wait for a slot rather than fail:
// a queued call reaches neither the proxy's chain nor the upstream, gives
// up with DEADLINE_EXCEEDED when its deadline ends first, and proceeds
// once a stream ends.
func TestMaxConcurrentStreams(t *testing.T) {
	t.Parallel()
	entered := make(chan struct{}, 10)
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			entered <- struct{}{}
			for {
				if _, err := stream.Recv(); err != nil {
					if errors.Is(err, io.EOF) {
						return nil
					}
					return err
				}
			}
		},
	})
	env := proxytest.Start(t, addr, proxytest.Config{ServerOptions: []server.Option{server.WithMaxConcurrentStreams(2)}})
	ctx := testContext(t)
	waitEntered := func(what string) {
		t.Helper()
		select {
		case <-entered:
		case <-ctx.Done():
			t.Fatalf("%s never reached the upstream", what)
		}
	}
	end := func(s testpb.TestService_FullDuplexCallClient) error {
		if err := s.CloseSend(); err != nil {
			return err
		}
		if _, err := s.Recv(); !errors.Is(err, io.EOF) {
			return err
		}
		return nil
	}

	var open []testpb.TestService_FullDuplexCallClient
	for i := range 2 {
		s, err := env.Client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		waitEntered("an open stream")
		open = append(open, s)
	}

	third := make(chan error, 1)
	go func() {
		s, err := env.Client.FullDuplexCall(ctx)
		if err == nil {
			err = end(s)
		}
		third <- err
	}()

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if _, err := env.Client.FullDuplexCall(short); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("stream over the limit with a deadline: %v, want DEADLINE_EXCEEDED", err)
	}
	select {
	case <-entered:
		t.Fatal("a stream over the limit reached the upstream while two were open")
	case err := <-third:
		t.Fatalf("the queued stream ended while two were open: %v", err)
	default:
	}

	if err := end(open[0]); err != nil {
		t.Fatalf("ending the first stream: %v", err)
	}
	waitEntered("the queued stream")
	if err := <-third; err != nil {
		t.Errorf("the queued stream: %v", err)
	}
	if err := end(open[1]); err != nil {
		t.Errorf("ending the second stream: %v", err)
	}
}

// rawConn is an HTTP/2 client that ignores the server's settings, as a
// hostile or broken client would.
type rawConn struct {
	t        *testing.T
	conn     net.Conn
	fr       *http2.Framer
	settings map[http2.SettingID]uint32
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	fr.MaxHeaderListSize = 1 << 20
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	c := &rawConn{t: t, conn: conn, fr: fr, settings: map[http2.SettingID]uint32{}}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("reading the server's settings: %v", err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			_ = sf.ForeachSetting(func(s http2.Setting) error { c.settings[s.ID] = s.Val; return nil })
			if err := fr.WriteSettingsAck(); err != nil {
				t.Fatal(err)
			}
			return c
		}
	}
}

// request opens stream id with a gRPC request's headers plus extra,
// ending the request at once if end.
func (c *rawConn) request(id uint32, end bool, extra ...hpack.HeaderField) {
	c.t.Helper()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := append([]hpack.HeaderField{
		{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
		{Name: ":path", Value: "/test.Raw/Call"}, {Name: ":authority", Value: "raw"},
		{Name: "content-type", Value: "application/grpc"}, {Name: "te", Value: "trailers"},
	}, extra...)
	for _, f := range fields {
		if err := enc.WriteField(f); err != nil {
			c.t.Fatal(err)
		}
	}
	const chunk = 16 << 10 // the server's SETTINGS_MAX_FRAME_SIZE
	b := block.Bytes()
	first := b[:min(chunk, len(b))]
	b = b[len(first):]
	if err := c.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: end, EndHeaders: len(b) == 0}); err != nil {
		c.t.Fatal(err)
	}
	for len(b) > 0 {
		next := b[:min(chunk, len(b))]
		b = b[len(next):]
		if err := c.fr.WriteContinuation(id, len(b) == 0, next); err != nil {
			c.t.Fatal(err)
		}
	}
}

// outcome reads frames until stream id is reset, returning the reset code,
// or ends, returning its status and grpc-status.
func (c *rawConn) outcome(id uint32) (rst http2.ErrCode, end string) {
	c.t.Helper()
	rst, end, err := c.tryOutcome(id)
	if err != nil {
		c.t.Fatalf("waiting for stream %d: %v", id, err)
	}
	return rst, end
}

// tryOutcome is outcome, returning an error if the connection fails or
// goes away.
func (c *rawConn) tryOutcome(id uint32) (rst http2.ErrCode, end string, err error) {
	for {
		f, err := c.fr.ReadFrame()
		if err != nil {
			return 0, "", err
		}
		if f.Header().StreamID != id {
			if g, ok := f.(*http2.GoAwayFrame); ok {
				return 0, "", fmt.Errorf("GOAWAY %v", g.ErrCode)
			}
			continue
		}
		switch f := f.(type) {
		case *http2.RSTStreamFrame:
			return f.ErrCode, "", nil
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				return 0, f.PseudoValue("status") + " grpc-status=" + headerValue(f, "grpc-status"), nil
			}
		}
	}
}

// manyFields returns n header fields with values of size bytes.
func manyFields(n, size int) []hpack.HeaderField {
	fields := make([]hpack.HeaderField, n)
	for i := range fields {
		fields[i] = hpack.HeaderField{Name: fmt.Sprintf("x-big-%d", i), Value: strings.Repeat("v", size)}
	}
	return fields
}

func headerValue(f *http2.MetaHeadersFrame, name string) string {
	for _, hf := range f.RegularFields() {
		if hf.Name == name {
			return hf.Value
		}
	}
	return ""
}

// TestLimitsAgainstRawClient checks that the server advertises its limits
// in its HTTP/2 settings and enforces them on a client that ignores them:
// headers a little over the limit get the stream reset with
// FRAME_SIZE_ERROR and the connection keeps serving; headers far over it
// (one value longer than the whole limit, a frame of more than twice what
// is left, a CONTINUATION after the limit) close the connection, as
// golang.org/x/net/http2's framer decides; a stream over the limit gets
// REFUSED_STREAM.
func TestLimitsAgainstRawClient(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	hold := pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		if len(call.Inbound.Get("x-hold")) > 0 {
			select {
			case <-release:
			case <-stream.Context().Done():
			}
		}
		return nil
	})

	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, proxytest.Serve(t, nopHandler))
		if got := c.settings[http2.SettingMaxConcurrentStreams]; got != server.DefaultMaxConcurrentStreams {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, server.DefaultMaxConcurrentStreams)
		}
		if got := c.settings[http2.SettingMaxHeaderListSize]; got != server.DefaultMaxHeaderListSize {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d, want %d", got, server.DefaultMaxHeaderListSize)
		}
	})
	t.Run("no stream limit", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, proxytest.Serve(t, nopHandler, server.WithMaxConcurrentStreams(0)))
		if got, ok := c.settings[http2.SettingMaxConcurrentStreams]; ok {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want none (no limit)", got)
		}
	})
	t.Run("header list size", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, proxytest.Serve(t, hold, server.WithMaxHeaderListSize(4<<10)))
		if got := c.settings[http2.SettingMaxHeaderListSize]; got != 4<<10 {
			t.Errorf("SETTINGS_MAX_HEADER_LIST_SIZE = %d, want %d", got, 4<<10)
		}
		// About 6 KiB of headers, in one frame.
		c.request(1, true, manyFields(20, 256)...)
		if rst, _ := c.outcome(1); rst != http2.ErrCodeFrameSize {
			t.Errorf("headers over the limit: reset %v, want FRAME_SIZE_ERROR", rst)
		}
		c.request(3, true, hpack.HeaderField{Name: "x-small", Value: "v"})
		if rst, got := c.outcome(3); rst != 0 || got != "200 grpc-status=0" {
			t.Errorf("next call on the connection: reset %v, end %q; want 200 grpc-status=0", rst, got)
		}
	})
	for name, fields := range map[string][]hpack.HeaderField{
		"one value longer than the limit": manyFields(1, 8<<10),
		"headers ten times the limit":     manyFields(40, 1<<10),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			addr := proxytest.Serve(t, hold, server.WithMaxHeaderListSize(4<<10))
			c := dialRaw(t, addr)
			c.request(1, true, fields...)
			if rst, end, err := c.tryOutcome(1); err == nil {
				t.Errorf("reset %v, end %q; want the connection closed", rst, end)
			}
			c = dialRaw(t, addr)
			c.request(1, true)
			if rst, got := c.outcome(1); rst != 0 || got != "200 grpc-status=0" {
				t.Errorf("call on a new connection: reset %v, end %q; want 200 grpc-status=0", rst, got)
			}
		})
	}
	t.Run("concurrent streams", func(t *testing.T) {
		t.Parallel()
		c := dialRaw(t, proxytest.Serve(t, hold, server.WithMaxConcurrentStreams(2)))
		if got := c.settings[http2.SettingMaxConcurrentStreams]; got != 2 {
			t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want 2", got)
		}
		c.request(1, false, hpack.HeaderField{Name: "x-hold", Value: "1"})
		c.request(3, false, hpack.HeaderField{Name: "x-hold", Value: "1"})
		c.request(5, true)
		if rst, _ := c.outcome(5); rst != http2.ErrCodeRefusedStream {
			t.Errorf("third stream: reset %v, want REFUSED_STREAM", rst)
		}
		// Ending stream 1 (the client resets it) frees a slot.
		if err := c.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
			t.Fatal(err)
		}
		c.request(7, true)
		if rst, got := c.outcome(7); rst != 0 || got != "200 grpc-status=0" {
			t.Errorf("stream after a slot freed: reset %v, end %q; want 200 grpc-status=0", rst, got)
		}
	})
}
