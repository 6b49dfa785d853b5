package metadata

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"

	grpcmd "google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
)

// ValueFunc computes a header value for a call: the value and true, or false
// when the call has none, so that the operation takes its default or is
// skipped.
//
// Request operations call it on the call's request goroutine, response and
// trailer operations on its response goroutine, and different calls call it
// concurrently: it must be safe for concurrent use. It must not change the
// call; per-call state ([pipeline.Key]) is safe to read.
type ValueFunc func(ctx context.Context, call *pipeline.Call) (string, bool)

// StateString returns a [ValueFunc] that reads the call's value for key,
// set by an earlier filter: missing when the call has none.
func StateString(key *pipeline.Key[string]) ValueFunc {
	return func(_ context.Context, call *pipeline.Call) (string, bool) { return key.Get(call) }
}

// HeadersOption configures [NewHeaders].
type HeadersOption func(*headersOptions)

type headersOptions struct {
	name   string
	logger *slog.Logger
}

// WithName names the filter in logs, spans and errors. Default "headers".
func WithName(name string) HeadersOption {
	return func(o *headersOptions) {
		if name != "" {
			o.name = name
		}
	}
}

// WithLogger sets the logger that reports, at debug level, values dropped
// because they cannot be sent in a header. Default [slog.Default].
func WithLogger(l *slog.Logger) HeadersOption {
	return func(o *headersOptions) {
		if l != nil {
			o.logger = l
		}
	}
}

// NewHeaders returns the header mutation filter that cfg describes, or every
// problem with cfg (see [HeadersConfig.Validate]).
//
// The filter only has the hooks its config uses: request operations run in
// OnRequestHeaders on call.Header, response operations in OnResponseHeaders,
// trailer operations in OnResponseEnd; a side without operations adds
// nothing to the chain. It never has message hooks, so a chain of header
// filters needs no message handling ([pipeline.Touch.NeedsMessages]). It
// never changes call.Inbound.
func NewHeaders(cfg HeadersConfig, opts ...HeadersOption) (pipeline.Filter, error) {
	o := headersOptions{name: headersName, logger: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	h := &headers{
		name:     o.name,
		log:      o.logger,
		request:  compile(cfg.Request),
		response: compile(cfg.Response),
		trailers: compile(cfg.Trailers),
	}
	f := &pipeline.Funcs{FilterName: h.name}
	if len(h.request) > 0 {
		f.RequestHeaders = h.OnRequestHeaders
	}
	if len(h.response) > 0 {
		f.ResponseHeaders = h.OnResponseHeaders
	}
	if len(h.trailers) > 0 {
		f.ResponseEnd = h.OnResponseEnd
	}
	return f, nil
}

// headers is the compiled filter: its operations, in order, per side.
type headers struct {
	name                        string
	log                         *slog.Logger
	request, response, trailers []op
}

type opKind uint8

const (
	opAdd opKind = iota
	opSet
	opRemove
	opRename
)

// op is one compiled operation.
type op struct {
	kind opKind
	key  string
	to   string // rename target
	src  source // add and set
	def  string // default of add and set; "" for none
}

// source returns the values of one operation for a call, in a slice the
// caller owns; none when the call has no value.
type source func(ctx context.Context, call *pipeline.Call) []string

func compile(ops []HeaderOp) []op {
	out := make([]op, 0, len(ops))
	for _, c := range ops {
		switch {
		case c.Add != nil:
			out = append(out, op{kind: opAdd, key: c.Add.Key, src: sourceOf(c.Add), def: c.Add.Default})
		case c.Set != nil:
			out = append(out, op{kind: opSet, key: c.Set.Key, src: sourceOf(c.Set), def: c.Set.Default})
		case c.Remove != nil:
			out = append(out, op{kind: opRemove, key: c.Remove.Key})
		case c.Rename != nil:
			out = append(out, op{kind: opRename, key: c.Rename.Key, to: c.Rename.To})
		}
	}
	return out
}

// sourceOf compiles the one value source of a validated v.
func sourceOf(v *HeaderValue) source {
	switch {
	case v.Value != "":
		lit := v.Value
		return func(context.Context, *pipeline.Call) []string { return []string{lit} }
	case v.Claim != "":
		name := v.Claim
		return func(_ context.Context, call *pipeline.Call) []string {
			claims, ok := pipeline.ClaimsKey.Get(call)
			if !ok {
				return nil
			}
			s, ok := claims.String(name)
			if !ok {
				return nil
			}
			return []string{s}
		}
	case v.Header != "":
		key := v.Header
		return func(_ context.Context, call *pipeline.Call) []string {
			return slices.Clone(call.Inbound[key]) // never alias the inbound view
		}
	case v.Func != nil:
		fn := v.Func
		return func(ctx context.Context, call *pipeline.Call) []string {
			if s, ok := fn(ctx, call); ok {
				return []string{s}
			}
			return nil
		}
	}
	switch v.From {
	case FromPeer:
		return func(_ context.Context, call *pipeline.Call) []string {
			if ip, ok := peerIP(call.Peer); ok {
				return []string{ip}
			}
			return nil
		}
	case FromAuthority:
		return func(_ context.Context, call *pipeline.Call) []string {
			if call.Authority == "" {
				return nil
			}
			return []string{call.Authority}
		}
	default: // FromMethod
		return func(_ context.Context, call *pipeline.Call) []string {
			if call.Method == "" {
				return nil
			}
			return []string{call.Method}
		}
	}
}

// peerIP returns the IP address of a, without port or zone.
func peerIP(a net.Addr) (string, bool) {
	if t, ok := a.(*net.TCPAddr); ok {
		if t == nil {
			return "", false
		}
		if ip, ok := netip.AddrFromSlice(t.IP); ok {
			return ip.Unmap().String(), true
		}
		return "", false
	}
	if a == nil {
		return "", false
	}
	host := a.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return "", false
	}
	return ip.WithZone("").Unmap().String(), true
}

// Name returns the filter's name.
func (h *headers) Name() string { return h.name }

// OnRequestHeaders applies the request operations to call.Header.
func (h *headers) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	if call.Header == nil {
		call.Header = grpcmd.MD{}
	}
	h.apply(ctx, call, call.Header, h.request)
	return nil
}

// OnResponseHeaders applies the response operations to header.
func (h *headers) OnResponseHeaders(ctx context.Context, call *pipeline.Call, header grpcmd.MD) error {
	h.apply(ctx, call, header, h.response)
	return nil
}

// OnResponseEnd applies the trailer operations to end.Trailer.
func (h *headers) OnResponseEnd(ctx context.Context, call *pipeline.Call, end *pipeline.End) {
	if end.Trailer == nil {
		end.Trailer = grpcmd.MD{}
	}
	h.apply(ctx, call, end.Trailer, h.trailers)
}

// apply runs ops on md in order. Value slices already in md may be shared
// with other maps, so they are replaced, never written to.
func (h *headers) apply(ctx context.Context, call *pipeline.Call, md grpcmd.MD, ops []op) {
	for i := range ops {
		o := &ops[i]
		switch o.kind {
		case opRemove:
			delete(md, o.key)
		case opRename:
			v := md[o.key]
			delete(md, o.key)
			if len(v) > 0 {
				md[o.to] = v
			}
		case opSet:
			if v := h.values(ctx, call, o); v != nil {
				md[o.key] = v
			}
		case opAdd:
			if v := h.values(ctx, call, o); v != nil {
				md[o.key] = append(slices.Clip(md[o.key]), v...)
			}
		}
	}
}

// values returns the values of an add or set, without those grpc-go would
// refuse to send; the default or nil when none is left.
func (h *headers) values(ctx context.Context, call *pipeline.Call, o *op) []string {
	vals := o.src(ctx, call)
	n := 0
	for _, v := range vals {
		if pipeline.ValidPair(o.key, v) {
			vals[n] = v
			n++
			continue
		}
		h.log.LogAttrs(ctx, slog.LevelDebug, "header value dropped: not printable ASCII",
			slog.String("filter", h.name), slog.String("key", o.key), slog.String("method", call.Method))
	}
	if n == 0 {
		if o.def != "" {
			return []string{o.def}
		}
		return nil
	}
	return vals[:n:n]
}

var (
	_ pipeline.RequestHeadersHook  = (*headers)(nil)
	_ pipeline.ResponseHeadersHook = (*headers)(nil)
	_ pipeline.ResponseEndHook     = (*headers)(nil)
)
