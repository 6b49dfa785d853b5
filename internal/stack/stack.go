package stack

// reserve is how much stack Grow makes free: with the few frames below
// it, the runtime doubles an 8 KiB stack to 16 KiB, which the proxy's
// paths fit in (a small unary call through the chain, the router, the
// terminal filter and grpc-go's client stream; a fan-out member's
// NewStream and receive loop). A 12 KiB reserve gives the same 16 KiB
// stack and measured the same.
const reserve = 8 << 10

// used is never true. It keeps Grow's buffer, and so the frame that makes
// the runtime grow the stack, from being compiled away; the buffer is
// never zeroed or touched.
var used bool

// Grow grows the calling goroutine's stack to hold at least reserve more
// bytes, while the stack is shallow and cheap to copy. Call it first thing
// on a goroutine whose path will outgrow its first stack anyway; on a
// goroutine that would not, it costs a stack of 16 KiB that it would not
// otherwise hold. The trick is CockroachDB's (util/growstack).
//
//go:noinline
func Grow() {
	if used {
		var buf [reserve]byte
		keep(buf[:])
	}
}

//go:noinline
func keep([]byte) {}
