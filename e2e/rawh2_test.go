package e2e

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// rawConn is a hand-driven HTTP/2 connection with prior knowledge (h2c),
// for requests no grpc-go client would send.
type rawConn struct {
	t      testing.TB
	c      net.Conn
	fr     *http2.Framer
	enc    *hpack.Encoder
	encBuf bytes.Buffer
	nextID uint32
}

// dialRaw opens an HTTP/2 connection to addr: the client preface and an
// empty SETTINGS frame. It is closed when the test ends.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, guard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	r := &rawConn{t: t, c: c, fr: http2.NewFramer(c, c), nextID: 1}
	r.enc = hpack.NewEncoder(&r.encBuf)
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.MaxHeaderListSize = 16 << 20
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	if err := r.fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return r
}

// grpcHeaders are the request headers of a gRPC call to path, then extra
// pairs.
func grpcHeaders(path string, extra ...string) []string {
	return append([]string{":method", "POST", ":scheme", "http", ":path", path, ":authority", "manifold.test",
		"content-type", "application/grpc", "te", "trailers"}, extra...)
}

// request starts a stream with the given header pairs (name, value, …)
// and returns its id. With endStream the stream is half-closed at once.
func (r *rawConn) request(pairs []string, endStream bool) uint32 {
	r.t.Helper()
	r.encBuf.Reset()
	for i := 0; i+1 < len(pairs); i += 2 {
		if err := r.enc.WriteField(hpack.HeaderField{Name: pairs[i], Value: pairs[i+1]}); err != nil {
			r.t.Fatal(err)
		}
	}
	id := r.nextID
	r.nextID += 2
	block := r.encBuf.Bytes()
	const max = 16 << 10 // the default SETTINGS_MAX_FRAME_SIZE
	first := block
	if len(first) > max {
		first = block[:max]
	}
	// Write errors are not fatal: the server may close the connection
	// while the client still writes, and result reports the close.
	if err := r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first, EndStream: endStream, EndHeaders: len(block) <= max}); err != nil {
		r.t.Logf("writing headers: %v", err)
		return id
	}
	for rest := block[len(first):]; len(rest) > 0; {
		n := min(len(rest), max)
		if err := r.fr.WriteContinuation(id, n == len(rest), rest[:n]); err != nil {
			r.t.Logf("writing headers: %v", err)
			return id
		}
		rest = rest[n:]
	}
	return id
}

// data sends p on stream id; a write error is logged, as in request.
func (r *rawConn) data(id uint32, endStream bool, p []byte) {
	r.t.Helper()
	if err := r.fr.WriteData(id, endStream, p); err != nil {
		r.t.Logf("writing data: %v", err)
	}
}

// grpcFrame is a gRPC length-prefixed message header declaring n bytes,
// followed by body.
func grpcFrame(compressed bool, n uint32, body []byte) []byte {
	b := make([]byte, 5, 5+len(body))
	if compressed {
		b[0] = 1
	}
	binary.BigEndian.PutUint32(b[1:], n)
	return append(b, body...)
}

// rawResult is how the server ended one stream.
type rawResult struct {
	httpStatus  string // :status
	grpcStatus  string // grpc-status, from headers or trailers
	grpcMessage string
	contentType string
	body        []byte
	rst         *http2.ErrCode // RST_STREAM
	goAway      *http2.ErrCode // GOAWAY before the stream ended
	closed      error          // the connection ended (EOF, reset) before the stream did
}

func (r rawResult) String() string {
	s := fmt.Sprintf(":status=%q grpc-status=%q grpc-message=%q content-type=%q body=%q", r.httpStatus, r.grpcStatus, r.grpcMessage, r.contentType, truncate(string(r.body), 200))
	if r.rst != nil {
		s += " RST_STREAM " + r.rst.String()
	}
	if r.goAway != nil {
		s += " GOAWAY " + r.goAway.String()
	}
	if r.closed != nil {
		s += " closed: " + r.closed.Error()
	}
	return s
}

// result reads frames until stream id ends (END_STREAM, RST_STREAM, or
// the connection closing), answering SETTINGS and PING on the way. A read
// that blocks for guard fails the test: the server left the client
// hanging.
func (r *rawConn) result(id uint32) rawResult {
	r.t.Helper()
	var res rawResult
	_ = r.c.SetReadDeadline(time.Now().Add(guard))
	defer r.c.SetReadDeadline(time.Time{})
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			if isTimeout(err) {
				r.t.Fatalf("stream %d: no answer within %v (so far: %v)", id, guard, res)
			}
			res.closed = err
			return res
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = r.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = r.fr.WritePing(true, f.Data)
			}
		case *http2.GoAwayFrame:
			code := f.ErrCode
			res.goAway = &code
			if f.LastStreamID < id {
				return res
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == id {
				code := f.ErrCode
				res.rst = &code
				return res
			}
		case *http2.MetaHeadersFrame:
			if f.StreamID != id {
				continue
			}
			for _, hf := range f.Fields {
				switch hf.Name {
				case ":status":
					res.httpStatus = hf.Value
				case "grpc-status":
					res.grpcStatus = hf.Value
				case "grpc-message":
					res.grpcMessage = hf.Value
				case "content-type":
					res.contentType = hf.Value
				}
			}
			if f.StreamEnded() {
				return res
			}
		case *http2.DataFrame:
			if f.StreamID != id {
				continue
			}
			res.body = append(res.body, f.Data()...)
			if n := len(f.Data()); n > 0 {
				// Keep the windows open for long answers.
				_ = r.fr.WriteWindowUpdate(0, uint32(n))
				_ = r.fr.WriteWindowUpdate(id, uint32(n))
			}
			if f.StreamEnded() {
				return res
			}
		}
	}
}

// readUntilClosed reads and discards what the server sends until it closes
// the connection, and returns what it sent. A server that neither answers
// nor closes within guard fails the test.
func readUntilClosed(t testing.TB, c net.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(guard))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	if isTimeout(err) {
		t.Fatalf("the server kept the connection open for %v after %d bytes: %q", guard, got.Len(), truncate(got.String(), 200))
	}
	if err != nil && !errors.Is(err, net.ErrClosed) && !strings.Contains(err.Error(), "reset") {
		t.Logf("read ended with %v", err)
	}
	return got.Bytes()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
