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
// safe to forward upstream: without hop-by-hop keys (see [IsHopByHop]),
// without Manifold's internal headers ([InternalPrefix]), and without
// values grpc-go refuses to send (see [ValidPair]).
func OutboundHeader(in metadata.MD) metadata.MD {
	out := make(metadata.MD, len(in))
	for k, v := range in {
		if IsHopByHop(k) || strings.HasPrefix(k, InternalPrefix) {
			continue
		}
		out[k] = validValues(k, v, true)
		if len(out[k]) == 0 {
			delete(out, k)
		}
	}
	return out
}

// ValidPair reports whether grpc-go would send the pair: keys of lowercase
// letters, digits and "-_.", and, unless the key ends in "-bin", values of
// printable ASCII. grpc-go's server accepts more than its client sends (a
// UTF-8 value from a non-Go client, say); forwarding such a pair would fail
// the whole call, so the proxy drops the pair instead.
func ValidPair(key, value string) bool {
	if key == "" {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	if strings.HasSuffix(key, "-bin") {
		return true
	}
	for i := 0; i < len(value); i++ {
		if value[i] < 0x20 || value[i] > 0x7e {
			return false
		}
	}
	return true
}

// validValues returns the values of key that grpc-go can send, copying when
// copyAlways is set or when some are dropped.
func validValues(key string, v []string, copyAlways bool) []string {
	ok := true
	for _, s := range v {
		if !ValidPair(key, s) {
			ok = false
			break
		}
	}
	if ok {
		if copyAlways {
			return append([]string(nil), v...)
		}
		return v
	}
	out := make([]string, 0, len(v))
	for _, s := range v {
		if ValidPair(key, s) {
			out = append(out, s)
		}
	}
	return out
}

// ResponseHeader returns a copy of upstream response metadata (headers or
// trailers) without hop-by-hop keys and pairs grpc-go would refuse to send
// (see [ValidPair]), ready to send to the client. It returns nil for empty
// metadata.
func ResponseHeader(in metadata.MD) metadata.MD {
	if len(in) == 0 {
		return nil
	}
	out := make(metadata.MD, len(in))
	for k, v := range in {
		if IsHopByHop(k) {
			continue
		}
		if v = validValues(k, v, false); len(v) > 0 {
			out[k] = v
		}
	}
	return out
}
