package logging

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
	"go.opentelemetry.io/otel/trace"

	"github.com/manifold-grpc/manifold/pipeline"
)

// The records written to [Config.Output] are encoded here rather than by
// slog's JSONHandler. The object is the one JSONHandler writes for the
// same record (time in RFC 3339 to the nanosecond, level, msg, then the
// attributes, groups as nested objects), so a log pipeline cannot tell
// the two apart; only the escaping of unusual characters may be spelled
// differently (jsontext's minimal RFC 8785 form against JSONHandler's),
// never what a JSON parser reads. JSONHandler spends most of the record's
// cost walking a generic record: slog attributes made of every field
// (strings for addresses, durations and ids), their copy into a
// slog.Record, its state machine, a handler lock around a write that the
// output already serializes. Strings are quoted by jsontext, the
// encoding/json/v2 text layer.

// outputLevel is the lowest level written to an output, JSONHandler's
// default.
const outputLevel = slog.LevelInfo

// jsonWriter writes a record's fields as the JSON line of an output.
type jsonWriter struct {
	b []byte
	// first is true right after an object opened: its first field needs
	// no comma.
	first bool
}

var _ fieldWriter = (*jsonWriter)(nil)

// jsonWriters are reused with their buffers.
var jsonWriters = sync.Pool{New: func() any { return &jsonWriter{b: make([]byte, 0, 1024)} }}

// maxPooledRecord is the largest buffer put back into jsonWriters, so that
// one huge record (long metadata values) does not pin its buffer.
const maxPooledRecord = 16 << 10

// begin starts the line: time, level and message, as JSONHandler writes
// them.
func (w *jsonWriter) begin(t time.Time, level slog.Level, msg string) {
	w.b = append(w.b[:0], `{"time":"`...)
	w.b = appendRecordTime(w.b, t)
	w.b = append(w.b, `","level":`...)
	w.b = appendString(w.b, level.String())
	w.b = append(w.b, `,"msg":`...)
	w.b = appendString(w.b, msg)
	w.first = false
}

// end closes the line.
func (w *jsonWriter) end() { w.b = append(w.b, "}\n"...) }

// key writes the separator and "key":. Keys are written as they are:
// they are the Key constants and the metadata keys of Config.Headers,
// which New has checked hold only letters, digits and -_. (validKey).
func (w *jsonWriter) key(k string) {
	if !w.first {
		w.b = append(w.b, ',')
	}
	w.first = false
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *jsonWriter) string(key, value string) {
	w.key(key)
	w.b = appendString(w.b, value)
}

func (w *jsonWriter) int(key string, value int64) {
	w.key(key)
	w.b = strconv.AppendInt(w.b, value, 10)
}

func (w *jsonWriter) millis(key string, d time.Duration) {
	w.key(key)
	w.b = appendMillis(w.b, d)
}

// addr writes a TCP address without making its string first; it is the
// same text as net.TCPAddr.String.
func (w *jsonWriter) addr(key string, a net.Addr) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		w.string(key, a.String())
		return
	}
	ap := tcp.AddrPort()
	w.key(key)
	w.b = append(w.b, '"')
	w.b = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(w.b)
	w.b = append(w.b, '"')
}

func (w *jsonWriter) spanContext(sc trace.SpanContext) {
	tid, sid := sc.TraceID(), sc.SpanID()
	w.key(KeyTraceID)
	w.b = append(w.b, '"')
	w.b = hex.AppendEncode(w.b, tid[:])
	w.b = append(w.b, '"')
	w.key(KeySpanID)
	w.b = append(w.b, '"')
	w.b = hex.AppendEncode(w.b, sid[:])
	w.b = append(w.b, '"')
}

func (w *jsonWriter) upstreams(key string, ups Upstreams) {
	w.key(key)
	w.b = ups.appendJSON(w.b)
}

func (w *jsonWriter) beginGroup(key string) {
	w.key(key)
	w.b = append(w.b, '{')
	w.first = true
}

func (w *jsonWriter) endGroup() {
	w.b = append(w.b, '}')
	w.first = false
}

// writeRecord encodes the record and writes it to the output as one line.
func (f *Filter) writeRecord(ctx context.Context, call *pipeline.Call, end *pipeline.End, now time.Time, level slog.Level) {
	w := jsonWriters.Get().(*jsonWriter)
	w.begin(now, level, f.msg)
	f.writeFields(w, ctx, call, end, now)
	w.end()
	_, _ = f.out.Write(w.b) // failures are the output's to report
	if cap(w.b) <= maxPooledRecord {
		jsonWriters.Put(w)
	}
}

// appendMillis appends d in milliseconds, to the microsecond, as a JSON
// string: millisText without the string.
func appendMillis(b []byte, d time.Duration) []byte {
	b = append(b, '"')
	b = appendMillisText(b, d)
	return append(b, '"')
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as JSONHandler writes it.
//
// Nearly every string of a record (keys, method names, codes, routes,
// authorities) is printable ASCII with nothing to escape, and for those
// the JSON string is s in quotes, which is what jsontext writes too. The
// check costs a third of jsontext's general quoting, which was a fifth of
// a record's cost.
func appendString(b []byte, s string) []byte {
	if plainASCII(s) {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	b, _ = jsontext.AppendQuote(b, s)
	return b
}

// plainASCII reports whether s is printable ASCII without a quote or a
// backslash: the characters JSON strings hold as they are.
func plainASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}
