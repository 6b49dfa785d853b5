package methodkind

import (
	"encoding"
	"fmt"
	"strconv"
	"strings"
)

// Kind is the call kind of a gRPC method: which sides stream. Its zero value
// is [Unknown].
//
// Kind reads from and writes to text (YAML, JSON, flags) by its [Kind.String]
// name through [Kind.UnmarshalText] and [Kind.MarshalText].
type Kind uint8

// The kinds of a gRPC method.
const (
	// Unknown means the kind is not known; it is never a real method's kind.
	Unknown Kind = iota
	// Unary: one request message, one response message.
	Unary
	// ClientStreaming: a stream of request messages, one response message.
	ClientStreaming
	// ServerStreaming: one request message, a stream of response messages.
	ServerStreaming
	// BidiStreaming: streams both ways.
	BidiStreaming
)

var kindNames = [...]string{
	Unknown:         "unknown",
	Unary:           "unary",
	ClientStreaming: "client_streaming",
	ServerStreaming: "server_streaming",
	BidiStreaming:   "bidi_streaming",
}

// String returns "unknown", "unary", "client_streaming", "server_streaming"
// or "bidi_streaming"; a value outside the constants gives "kind(N)".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// ParseKind is the inverse of [Kind.String]. It ignores case and surrounding
// space and also accepts "bidi" for [BidiStreaming]. "unknown" parses to
// [Unknown] without error; config validation rejects it where a real kind is
// needed ([Patterns.Validate]).
func ParseKind(s string) (Kind, error) {
	name := strings.ToLower(strings.TrimSpace(s))
	if name == "bidi" {
		return BidiStreaming, nil
	}
	for k, n := range kindNames {
		if n == name {
			return Kind(k), nil
		}
	}
	return Unknown, fmt.Errorf("methodkind: unknown kind %q (want unary, client_streaming, server_streaming or bidi_streaming)", s)
}

// ClientStreams reports whether the client sends a stream of messages
// ([ClientStreaming] or [BidiStreaming]).
func (k Kind) ClientStreams() bool { return k == ClientStreaming || k == BidiStreaming }

// ServerStreams reports whether the server sends a stream of messages
// ([ServerStreaming] or [BidiStreaming]).
func (k Kind) ServerStreams() bool { return k == ServerStreaming || k == BidiStreaming }

// FromDesc returns the kind of a method from the streaming flags of its
// descriptor, as found in [google.golang.org/grpc.StreamDesc] or a
// MethodDescriptorProto's client_streaming and server_streaming fields.
func FromDesc(clientStreams, serverStreams bool) Kind {
	switch {
	case clientStreams && serverStreams:
		return BidiStreaming
	case clientStreams:
		return ClientStreaming
	case serverStreams:
		return ServerStreaming
	default:
		return Unary
	}
}

// MarshalText implements [encoding.TextMarshaler] with [Kind.String]'s name.
// A value outside the constants is an error.
func (k Kind) MarshalText() ([]byte, error) {
	if int(k) >= len(kindNames) {
		return nil, fmt.Errorf("methodkind: invalid kind %d", uint8(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler] with [ParseKind].
func (k *Kind) UnmarshalText(text []byte) error {
	v, err := ParseKind(string(text))
	if err != nil {
		return err
	}
	*k = v
	return nil
}

var (
	_ fmt.Stringer             = Kind(0)
	_ encoding.TextMarshaler   = Kind(0)
	_ encoding.TextUnmarshaler = (*Kind)(nil)
)
