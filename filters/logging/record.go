package logging

import (
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/pipeline"
)

// The attribute keys of a record, in the order they appear. They are stable:
// dashboards and alerts may depend on them. Keys that go-grpc-middleware's
// logging interceptor also writes (grpc.service, grpc.method, grpc.code,
// grpc.time_ms, peer.address) mean the same here.
const (
	// KeyFullMethod is the full method name, "/pkg.Service/Method".
	KeyFullMethod = "grpc.full_method"
	// KeyService is the service part, "pkg.Service".
	KeyService = "grpc.service"
	// KeyMethod is the method part, "Method".
	KeyMethod = "grpc.method"
	// KeyCode is the status code's name as grpc-go spells it: "OK",
	// "NotFound", "DeadlineExceeded".
	KeyCode = "grpc.code"
	// KeyError is the status message; only for codes other than OK, and
	// left out when empty.
	KeyError = "grpc.error"
	// KeyTimeMS is the call's duration in milliseconds, to the
	// microsecond, from the filter's request header hook to its response
	// end hook. Its value is a decimal string ("1.204"), as
	// go-grpc-middleware's logging interceptor writes it, not a JSON
	// number: slog's JSON handler encodes float values through
	// encoding/json, which cost about as much as the rest of the record.
	KeyTimeMS = "grpc.time_ms"
	// KeyPeer is the client's address, "ip:port"; left out when unknown.
	KeyPeer = "peer.address"
	// KeyAuthority is the :authority the client called; left out when
	// empty.
	KeyAuthority = "grpc.authority"
	// KeyUserAgent is the client's user-agent; left out when absent.
	KeyUserAgent = "grpc.user_agent"
	// KeyRequestMessages, KeyRequestBytes, KeyResponseMessages and
	// KeyResponseBytes count the messages and their uncompressed bytes
	// each way ([pipeline.Counters]). They are left out when the chain
	// runs outside a server that counts.
	KeyRequestMessages  = "grpc.request.messages"
	KeyRequestBytes     = "grpc.request.bytes"
	KeyResponseMessages = "grpc.response.messages"
	KeyResponseBytes    = "grpc.response.bytes"
	// KeyRoute is the name of the route that served the call
	// ([pipeline.Call.Route]); left out without a router.
	KeyRoute = "manifold.route"
	// KeyUpstream is a group for a call with exactly one upstream call to
	// a cluster (terminal route): cluster, code, time_ms.
	KeyUpstream = "upstream"
	// KeyUpstreams is an [Upstreams] list for a call that fanned out (or
	// made several upstream calls): one entry per upstream, in the order
	// the terminal recorded them (fan-out: target order). Calls that never
	// reached an upstream (a local reply) have neither key.
	KeyUpstreams = "upstreams"
	// KeyTraceID and KeySpanID are the W3C trace and span ids, in hex, of
	// the OpenTelemetry span in the call's context (the server span of
	// otelgrpc's stats handler, say); left out without a valid span.
	KeyTraceID = "trace_id"
	KeySpanID  = "span_id"
	// KeySubject is the "sub" claim of the caller's verified credentials
	// ([pipeline.ClaimsKey]), left out when the call is not authenticated.
	KeySubject = "auth.subject"
	// KeyMetadata is a group of the request metadata values that
	// [Config.Headers] lists, keyed by metadata key.
	KeyMetadata = "grpc.request.metadata"
)

// Keys inside the upstream group and the entries of [Upstreams].
const (
	upstreamCluster = "cluster"
	upstreamMember  = "member"
	upstreamCode    = "code"
	upstreamTime    = "time_ms"
)

// maxAttrs is the most top-level attributes a record has.
const maxAttrs = 22

// fieldWriter takes a record's fields in order: [attrWriter] makes slog
// attributes of them (for a logger), [jsonWriter] the JSON line of an
// output. [Filter.writeFields] decides which fields a record has, in one
// place for both.
type fieldWriter interface {
	string(key, value string)
	int(key string, value int64)
	// millis writes d in milliseconds, to the microsecond, as a decimal
	// string.
	millis(key string, d time.Duration)
	// addr writes a's "host:port" form.
	addr(key string, a net.Addr)
	// spanContext writes the trace and span ids in hex.
	spanContext(sc trace.SpanContext)
	upstreams(key string, ups Upstreams)
	// beginGroup and endGroup enclose a group's fields.
	beginGroup(key string)
	endGroup()
}

// writeFields writes the record's fields to w.
func (f *Filter) writeFields(w fieldWriter, ctx context.Context, call *pipeline.Call, end *pipeline.End, now time.Time) {
	code := end.Status.Code()
	var took time.Duration
	if start, ok := startKey.Get(call); ok {
		took = now.Sub(start)
	}
	svc, method := splitMethod(call.Method)
	w.string(KeyFullMethod, call.Method)
	w.string(KeyService, svc)
	w.string(KeyMethod, method)
	w.string(KeyCode, code.String())
	if code != codes.OK {
		if msg := end.Status.Message(); msg != "" {
			w.string(KeyError, msg)
		}
	}
	w.millis(KeyTimeMS, took)
	if call.Peer != nil {
		w.addr(KeyPeer, call.Peer)
	}
	if call.Authority != "" {
		w.string(KeyAuthority, call.Authority)
	}
	if ua := call.Inbound["user-agent"]; len(ua) > 0 {
		w.string(KeyUserAgent, ua[0])
	}
	if c := pipeline.CountersFromContext(ctx); c != nil {
		w.int(KeyRequestMessages, c.RequestMessages.Load())
		w.int(KeyRequestBytes, c.RequestBytes.Load())
		w.int(KeyResponseMessages, c.ResponseMessages.Load())
		w.int(KeyResponseBytes, c.ResponseBytes.Load())
	}
	if call.Route != "" {
		w.string(KeyRoute, call.Route)
	}
	if ups := pipeline.UpstreamResults(call); len(ups) == 1 && ups[0].Member == "" {
		w.beginGroup(KeyUpstream)
		w.string(upstreamCluster, ups[0].Cluster)
		w.string(upstreamCode, ups[0].Code.String())
		w.millis(upstreamTime, ups[0].Duration)
		w.endGroup()
	} else if len(ups) > 0 {
		w.upstreams(KeyUpstreams, ups)
	}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		w.spanContext(sc)
	}
	if claims, ok := pipeline.ClaimsKey.Get(call); ok {
		if sub := claims.Subject(); sub != "" {
			w.string(KeySubject, sub)
		}
	}
	f.writeMetadata(w, call)
}

// writeMetadata writes the group of listed request metadata the call has,
// if it has any.
func (f *Filter) writeMetadata(w fieldWriter, call *pipeline.Call) {
	open := false
	for _, k := range f.headers {
		v := call.Inbound[k]
		if len(v) == 0 {
			v = call.Header[k]
		}
		if len(v) == 0 {
			continue
		}
		if !open {
			w.beginGroup(KeyMetadata)
			open = true
		}
		w.string(k, joinValues(k, v))
	}
	if open {
		w.endGroup()
	}
}

// joinValues joins a key's values with ", ", in base64 for "-bin" keys.
func joinValues(key string, v []string) string {
	bin := strings.HasSuffix(key, "-bin")
	if len(v) == 1 && !bin {
		return v[0]
	}
	var b strings.Builder
	for i, s := range v {
		if i > 0 {
			b.WriteString(", ")
		}
		if bin {
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(s)))
		} else {
			b.WriteString(s)
		}
	}
	return b.String()
}

// splitMethod splits "/pkg.Service/Method" into "pkg.Service" and "Method".
func splitMethod(full string) (service, method string) {
	s := strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}

// millisText returns d in milliseconds, rounded to the microsecond, as a
// decimal string: appendMillisText's.
func millisText(d time.Duration) string {
	var b [24]byte
	return string(appendMillisText(b[:0], d))
}

// appendMillisText appends d in milliseconds, rounded to the microsecond
// (halves away from zero), as the shortest decimal: "12", "0.84",
// "1500.001". It is the text strconv writes for that number as a float
// (strconv.FormatFloat(ms, 'f', -1, 64)), made with integers, which cost a
// fifth as much and stay exact past the 104 days where a float64 of
// nanoseconds starts to round.
func appendMillisText(b []byte, d time.Duration) []byte {
	us := int64(d / time.Microsecond)
	switch r := d % time.Microsecond; {
	case r >= 500:
		us++
	case r <= -500:
		us--
	}
	if us < 0 {
		b = append(b, '-')
		us = -us
	}
	b = strconv.AppendInt(b, us/1000, 10)
	if frac := us % 1000; frac != 0 {
		b = append(b, '.', byte('0'+frac/100), byte('0'+frac/10%10), byte('0'+frac%10))
		for b[len(b)-1] == '0' {
			b = b[:len(b)-1]
		}
	}
	return b
}

// Upstreams is the value of the "upstreams" attribute: the upstream calls
// of a call that fanned out, in the order the terminal recorded them.
//
// [slog.JSONHandler] writes it as an array of objects,
//
//	[{"cluster":"machines","member":"n0","code":"OK","time_ms":"1.204"}, …]
//
// and [slog.TextHandler] (and loggers that print values with %v) as
//
//	machines/n0=OK(1.204ms) machines/n1=Unavailable(0.31ms)
type Upstreams []pipeline.UpstreamResult

// MarshalJSON writes u as an array of {cluster, member, code, time_ms}.
func (u Upstreams) MarshalJSON() ([]byte, error) { return u.appendJSON(nil), nil }

// appendJSON appends u as MarshalJSON writes it.
func (u Upstreams) appendJSON(b []byte) []byte {
	b = append(b, '[')
	for i, r := range u {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"cluster":`...)
		b = appendString(b, r.Cluster)
		if r.Member != "" {
			b = append(b, `,"member":`...)
			b = appendString(b, r.Member)
		}
		b = append(b, `,"code":`...)
		b = appendString(b, r.Code.String())
		b = append(b, `,"time_ms":`...)
		b = appendMillis(b, r.Duration)
		b = append(b, '}')
	}
	return append(b, ']')
}

// MarshalText writes u as [Upstreams.String] does.
func (u Upstreams) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// String returns "cluster/member=Code(1.2ms)" for each upstream, separated by
// spaces.
func (u Upstreams) String() string {
	var b []byte
	for i, r := range u {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, r.Cluster...)
		if r.Member != "" {
			b = append(b, '/')
			b = append(b, r.Member...)
		}
		b = append(b, '=')
		b = append(b, r.Code.String()...)
		b = append(b, '(')
		b = appendMillisText(b, r.Duration)
		b = append(b, "ms)"...)
	}
	return string(b)
}
