package server

// stackReserve is how much stack a call's goroutine is made to have before
// the call enters the chain.
//
// grpc-go serves each call on a goroutine of its own, which starts with a
// small stack. A call's path through the chain, the router, the terminal
// filter and grpc-go's client stream needs about 10 KiB, so the stack grows
// once during every call, and where it grows matters: the runtime copies
// the stack and walks every frame on it to adjust pointers, and by the
// time the path reaches grpc-go's NewStream or a filter's metrics there
// are a few dozen frames. Measured on the load benchmark's small unary
// calls, that growth was 8 % (three built-in filters) to 13 % (empty
// chain) of the proxy's CPU. Growing it here, where the stack holds four
// frames, costs a fraction of that. The trick is CockroachDB's
// (util/growstack); docs/performance.md has the numbers.
const stackReserve = 12 << 10

// growStackUsed is never true. It keeps growStack's buffer, and so the
// frame that makes the runtime grow the stack, from being compiled away;
// the buffer is never zeroed or touched.
var growStackUsed bool

// growStack grows the calling goroutine's stack to hold at least
// stackReserve more bytes, while the stack is shallow and cheap to copy.
//
//go:noinline
func growStack() {
	if growStackUsed {
		var buf [stackReserve]byte
		keep(buf[:])
	}
}

//go:noinline
func keep([]byte) {}
