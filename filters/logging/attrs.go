package logging

import (
	"log/slog"
	"net"
	"slices"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// attrWriter makes a record's fields into slog attributes, for a
// [slog.Logger] or a go-grpc-middleware logger.
type attrWriter struct {
	attrs []slog.Attr
	// groups are the indexes in attrs of the open groups' attributes.
	groups []int
}

var _ fieldWriter = (*attrWriter)(nil)

// attrWriters are reused: a record's attributes are copied by
// slog.Record.AddAttrs and by appendFields, so the slice is free again once
// the record is handed over.
var attrWriters = sync.Pool{New: func() any {
	return &attrWriter{attrs: make([]slog.Attr, 0, maxAttrs)}
}}

func (w *attrWriter) string(key, value string) { w.attrs = append(w.attrs, slog.String(key, value)) }

func (w *attrWriter) int(key string, value int64) { w.attrs = append(w.attrs, slog.Int64(key, value)) }

func (w *attrWriter) millis(key string, d time.Duration) { w.string(key, millisText(d)) }

func (w *attrWriter) addr(key string, a net.Addr) { w.string(key, a.String()) }

func (w *attrWriter) spanContext(sc trace.SpanContext) {
	w.string(KeyTraceID, sc.TraceID().String())
	w.string(KeySpanID, sc.SpanID().String())
}

func (w *attrWriter) upstreams(key string, ups Upstreams) {
	w.attrs = append(w.attrs, slog.Any(key, ups))
}

// beginGroup appends the group's attribute, whose value endGroup sets.
func (w *attrWriter) beginGroup(key string) {
	w.groups = append(w.groups, len(w.attrs))
	w.attrs = append(w.attrs, slog.Attr{Key: key})
}

// endGroup moves the fields written since beginGroup into the group's
// value. They are copied: slog keeps a group's slice, and w's is reused.
func (w *attrWriter) endGroup() {
	last := len(w.groups) - 1
	i := w.groups[last]
	w.groups = w.groups[:last]
	w.attrs[i].Value = slog.GroupValue(slices.Clone(w.attrs[i+1:])...)
	clear(w.attrs[i+1:])
	w.attrs = w.attrs[:i+1]
}

// reset empties w for the next record.
func (w *attrWriter) reset() {
	clear(w.attrs) // drop the references to this call's strings
	w.attrs, w.groups = w.attrs[:0], w.groups[:0]
}
