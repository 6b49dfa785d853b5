package manifold

import (
	"os"
	"runtime/debug"
)

// DefaultGCPercent is the garbage collector's target the manifold binary
// sets when the environment does not (GOGC unset): 200, where Go's own
// default is 100. A proxy's live heap is small (a few MiB: buffers in
// flight, per-call state), so collecting half as often costs little memory
// and saves CPU on every call. Measured with the load benchmark
// (docs/performance.md): about 7 % less proxy CPU per small unary call and
// 15 % per streamed message, for about 4 MiB more peak RSS; 400 saved no
// more and cost 12 MiB. GOGC (and GOMEMLIMIT, which Go also reads) win
// when set: GOGC=100 restores Go's default, and a memory limit makes the
// collector work harder as the heap nears it, whatever GOGC says.
const DefaultGCPercent = 200

// setGCDefault applies DefaultGCPercent unless GOGC is set. It returns the
// GC percent in force.
func setGCDefault() int {
	if os.Getenv("GOGC") != "" {
		p := debug.SetGCPercent(-1) // read it, then put it back
		debug.SetGCPercent(p)
		return p
	}
	debug.SetGCPercent(DefaultGCPercent)
	return DefaultGCPercent
}
