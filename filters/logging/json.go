package logging

import (
	"encoding/json"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/go-json-experiment/json/jsontext"
)

// The records written to [Config.Output] are encoded here rather than by
// slog's JSONHandler. The object is the one JSONHandler writes for the
// same record (time in RFC 3339 to the millisecond, level, msg, then the
// attributes, groups as nested objects), so a log pipeline cannot tell
// the two apart; only the escaping of unusual characters may be spelled
// differently (jsontext's minimal RFC 8785 form against JSONHandler's),
// never what a JSON parser reads. JSONHandler spends about two thirds of
// the record's cost walking a generic record: its state machine, the
// copy of the attributes into a slog.Record, a handler lock around a
// write that the output already serializes. Strings are quoted by
// jsontext, the encoding/json/v2 text layer.

// outputLevel is the lowest level written to an output, JSONHandler's
// default.
const outputLevel = slog.LevelInfo

// recordTimeLayout is JSONHandler's time format.
const recordTimeLayout = "2006-01-02T15:04:05.000Z07:00"

// recordBuffers holds the buffers records are encoded into before they are
// copied into the output's buffer.
var recordBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledRecord is the largest buffer put back into recordBuffers, so
// that one huge record (long metadata values) does not pin its buffer.
const maxPooledRecord = 16 << 10

// writeRecord encodes the record and writes it to the output as one line.
func (f *Filter) writeRecord(t time.Time, level slog.Level, attrs []slog.Attr) {
	bp := recordBuffers.Get().(*[]byte)
	b := appendRecord((*bp)[:0], t, level, f.msg, attrs)
	_, _ = f.out.Write(b) // failures are the output's to report
	if cap(b) <= maxPooledRecord {
		*bp = b
		recordBuffers.Put(bp)
	}
}

// appendRecord appends the JSON line of a record to b.
func appendRecord(b []byte, t time.Time, level slog.Level, msg string, attrs []slog.Attr) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, recordTimeLayout)
	b = append(b, `","level":`...)
	b = appendString(b, level.String())
	b = append(b, `,"msg":`...)
	b = appendString(b, msg)
	for _, a := range attrs {
		b = append(b, ',')
		b = appendAttr(b, a)
	}
	return append(b, "}\n"...)
}

// appendAttr appends "key":value.
func appendAttr(b []byte, a slog.Attr) []byte {
	b = appendString(b, a.Key)
	b = append(b, ':')
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return appendString(b, v.String())
	case slog.KindInt64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case slog.KindGroup:
		b = append(b, '{')
		for i, g := range v.Group() {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendAttr(b, g)
		}
		return append(b, '}')
	}
	if u, ok := v.Any().(Upstreams); ok {
		return u.appendJSON(b)
	}
	// Not a kind the record has; encoded as JSONHandler would.
	j, err := json.Marshal(v.Any())
	if err != nil {
		return appendString(b, "!ERROR:"+err.Error())
	}
	return append(b, j...)
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as JSONHandler writes it.
func appendString(b []byte, s string) []byte {
	b, _ = jsontext.AppendQuote(b, s)
	return b
}
