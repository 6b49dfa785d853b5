package pipeline

import (
	"google.golang.org/grpc"
)

// ServerStream is the client-facing side of a call, as grpc-go defines it.
// Every message on it is a *[rawcodec.Frame].
//
// One goroutine may call RecvMsg while another calls SendMsg, SetHeader,
// SendHeader or SetTrailer; neither side may be used from two goroutines at
// once.
type ServerStream = grpc.ServerStream

// Handler serves one call: it reads request frames from stream, sends
// response headers and frames to it, sets trailers, and returns the call's
// status as an error (nil for OK). A chain's terminal is a Handler, and so is
// a built [Chain].
type Handler interface {
	Serve(call *Call, stream ServerStream) error
}

// HandlerFunc adapts a function to [Handler].
type HandlerFunc func(call *Call, stream ServerStream) error

// Serve calls fn(call, stream).
func (fn HandlerFunc) Serve(call *Call, stream ServerStream) error { return fn(call, stream) }

// Touch is a set of the things a chain does with a call, so that a data path
// can skip work the chain does not need.
type Touch uint16

// The parts of a call that filters or terminals can touch.
const (
	TouchRequestHeaders Touch = 1 << iota
	TouchRequestMessages
	TouchRequestEnd
	TouchResponseHeaders
	TouchResponseMessages
	TouchResponseEnd
	// TouchAround: a filter wraps the stream itself.
	TouchAround
	// TouchTerminalMessages: the terminal reads or builds messages itself
	// (fan-out, splice) instead of forwarding them unchanged.
	TouchTerminalMessages
	// TouchCounters: a filter reads the call's message and byte counters
	// ([CountersFromContext]), which the server keeps only when asked,
	// since keeping them wraps every call's stream.
	TouchCounters
)

// CountersUser is implemented by filters that read [Counters], so that a
// chain with them reports [TouchCounters].
type CountersUser interface {
	UsesCounters() bool
}

// NeedsMessages reports whether any part of the chain must see individual
// messages; when false, the call could be forwarded below grpc-go's message
// layer.
func (t Touch) NeedsMessages() bool {
	return t&(TouchRequestMessages|TouchResponseMessages|TouchAround|TouchTerminalMessages) != 0
}

// Toucher is implemented by handlers that know what they touch, so that a
// chain can report it for everything it wraps. A terminal that forwards
// messages unchanged need not implement it.
type Toucher interface {
	Touches() Touch
}

var _ Handler = HandlerFunc(nil)
