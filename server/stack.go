package server

// stackReserve is how much stack a call's goroutine is made to have free
// before the call enters the chain: with the few frames below it, the
// runtime doubles the stack to 16 KiB, which the whole path of a small
// unary call, built-in filters included, fits in.
//
// grpc-go serves each call on a goroutine of its own, which starts with a
// small stack. A call's path through the chain, the router, the terminal
// filter and grpc-go's client stream needs more than 8 KiB, so the stack
// grows during every call, and where it grows matters: the runtime copies
// the stack and walks every frame on it to adjust pointers, and by the
// time the path reaches grpc-go's NewStream or a filter's metrics there
// are a few dozen frames. Measured on the load benchmark's small unary
// calls, that growth was 8 % (three built-in filters) to 13 % (empty
// chain) of the proxy's CPU; growing here, where the stack holds four
// frames, costs about a third of that. The price is memory on long idle
// streams, whose goroutines now keep 16 KiB where some kept 8 KiB: about
// 4 KiB more per idle stream. The trick is CockroachDB's
// (util/growstack); docs/performance.md has the numbers.
const stackReserve = 8 << 10

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
