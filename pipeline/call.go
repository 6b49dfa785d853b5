package pipeline

import (
	"context"
	"net"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Call describes one proxied call. The server creates it before the chain
// runs; every filter and the terminal of the call see the same *Call.
//
// Inbound is the client's view and must never be modified. Header is the
// outbound copy that request-side hooks edit and the terminal sends upstream.
type Call struct {
	// Method is the full method name, "/package.Service/Method".
	Method string
	// Authority is the :authority (host) the client called.
	Authority string
	// Route is the name of the route that serves the call, set by the
	// router before the route's chain runs; "" before routing or without a
	// router.
	Route string
	// Peer is the client's address, nil when unknown.
	Peer net.Addr
	// ContentSubtype is the codec part of the request's content-type:
	// "proto" for "application/grpc+proto", "" for plain "application/grpc".
	// The upstream call is made with the same content-subtype.
	ContentSubtype string
	// Compressor is the compression the client applied to its messages
	// (grpc-encoding), "" for none. The upstream call uses the same one.
	Compressor string
	// Inbound is the request metadata exactly as the client sent it, with
	// grpc-go's reserved keys removed. It is shared and read-only.
	Inbound metadata.MD
	// Header is the request metadata to send upstream: Inbound without
	// hop-by-hop and proxy-internal keys (see [OutboundHeader]). Request
	// header hooks may change it; the terminal reads it when it opens the
	// upstream call, after all request header hooks have run.
	Header metadata.MD

	// endWatched is set by the chains the call passes that watch the
	// client's half-close, on the handler's goroutine before the terminal
	// runs.
	endWatched bool

	mu sync.Mutex
	// state holds the [Key] values: a few per call, so a slice scanned
	// in order, backed by stateBuf until it outgrows it, costs no
	// allocation where a map cost two.
	state     []stateEntry
	stateBuf  [4]stateEntry
	upstreams []UpstreamResult
}

// NewCall describes the call that stream serves. It copies the incoming
// metadata once for Inbound and once for Header.
func NewCall(stream grpc.ServerStream) *Call {
	ctx := stream.Context()
	method, _ := grpc.MethodFromServerStream(stream)
	in, _ := metadata.FromIncomingContext(ctx)
	c := &Call{
		Method:  method,
		Inbound: in,
		Header:  OutboundHeader(in),
	}
	if v := in[":authority"]; len(v) > 0 {
		c.Authority = v[0]
	}
	if v := in["content-type"]; len(v) > 0 {
		c.ContentSubtype = contentSubtype(v[0])
	}
	if p, ok := peer.FromContext(ctx); ok {
		c.Peer = p.Addr
	}
	c.Compressor = recvCompressor(ctx)
	return c
}

// AppendForwardedFor appends the client's IP address to the outbound
// x-forwarded-for header, keeping any addresses earlier proxies added.
func (c *Call) AppendForwardedFor() {
	if c.Peer == nil {
		return
	}
	ip := c.Peer.String()
	if host, _, err := net.SplitHostPort(ip); err == nil {
		ip = host
	}
	if prev := c.Header[ForwardedForKey]; len(prev) > 0 {
		ip = strings.Join(prev, ", ") + ", " + ip
	}
	c.Header[ForwardedForKey] = []string{ip}
}

// contentSubtype returns the part after "application/grpc+" or
// "application/grpc;", lowercased, as grpc-go does.
func contentSubtype(contentType string) string {
	const base = "application/grpc"
	ct := strings.ToLower(contentType)
	if len(ct) <= len(base) || !strings.HasPrefix(ct, base) {
		return ""
	}
	switch ct[len(base)] {
	case '+', ';':
		return ct[len(base)+1:]
	}
	return ""
}

// recvCompressor returns the grpc-encoding of the call's request messages.
// grpc-go keeps it on its transport stream and does not put it in metadata.
func recvCompressor(ctx context.Context) string {
	s, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string })
	if !ok {
		return ""
	}
	if rc := s.RecvCompress(); rc != "identity" {
		return rc
	}
	return ""
}

// WatchesRequestEnd reports whether a filter on the call's path sees the
// client's half-close: a request end hook, or an around filter, whose
// stream wrapper might. A terminal that forwards a single request without
// reading on to the half-close (filters/route, told the method kinds) must
// not do so then, or those filters would never see it.
func (c *Call) WatchesRequestEnd() bool { return c.endWatched }
