package pipeline

import (
	"strings"

	"google.golang.org/grpc/metadata"
)

// ForwardedForKey is the request header that carries the chain of client
// addresses, one appended by each proxy.
const ForwardedForKey = "x-forwarded-for"

// InternalPrefix starts the names of Manifold's own headers. Clients cannot
// set them: they are removed from the inbound metadata before it is
// forwarded.
const InternalPrefix = "x-manifold-"

// hopByHop lists the keys that describe one connection or one hop, not the
// call: HTTP/1 connection headers (RFC 9110 section 7.6.1), HTTP/2
// pseudo-headers, and gRPC headers that grpc-go regenerates on every hop
// from the call's own settings (content-type from the content-subtype,
// grpc-timeout from the deadline, grpc-encoding from the compressor).
var hopByHop = map[string]bool{
	"connection":              true,
	"keep-alive":              true,
	"proxy-connection":        true,
	"transfer-encoding":       true,
	"upgrade":                 true,
	"te":                      true,
	"host":                    true,
	"trailer":                 true,
	"content-type":            true,
	"content-length":          true,
	"user-agent":              true,
	"grpc-timeout":            true,
	"grpc-encoding":           true,
	"grpc-accept-encoding":    true,
	"grpc-message-type":       true,
	"grpc-status":             true,
	"grpc-message":            true,
	"grpc-status-details-bin": true,
}

// IsHopByHop reports whether key describes one hop rather than the call and
// so must not be forwarded in either direction. Keys are lowercase, as in
// [metadata.MD].
func IsHopByHop(key string) bool {
	return hopByHop[key] || (key != "" && key[0] == ':')
}

// OutboundHeader returns a copy of the client's request metadata that is
// safe to forward upstream: without hop-by-hop keys (see [IsHopByHop]) and
// without Manifold's internal headers ([InternalPrefix]).
func OutboundHeader(in metadata.MD) metadata.MD {
	out := make(metadata.MD, len(in))
	for k, v := range in {
		if IsHopByHop(k) || strings.HasPrefix(k, InternalPrefix) {
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

// ResponseHeader returns a copy of upstream response metadata (headers or
// trailers) without hop-by-hop keys, ready to send to the client. It returns
// nil for empty metadata.
func ResponseHeader(in metadata.MD) metadata.MD {
	if len(in) == 0 {
		return nil
	}
	out := make(metadata.MD, len(in))
	for k, v := range in {
		if IsHopByHop(k) {
			continue
		}
		out[k] = v
	}
	return out
}
