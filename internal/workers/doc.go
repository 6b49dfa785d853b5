// Package workers runs a call's short tasks on goroutines that outlive
// them, so that each task does not pay for a new goroutine and its stack.
//
// A fan-out call starts a goroutine per member. Each such goroutine grows
// its stack to about 16 KiB inside grpc-go's NewStream, and the runtime
// frees that stack when the goroutine ends: under load, every member of
// every call allocated, faulted in, copied and freed a stack (5 % of a
// streaming fan-out's CPU in a profile of the binary). A [Pool]'s workers
// keep their grown stacks between tasks.
//
// Two runtime details make that hold, and are written down here because
// neither is an API:
//   - A new worker grows its stack first thing ([stack.Grow]), where the
//     copy is cheap.
//   - The garbage collector halves the stack of a goroutine that uses less
//     than a quarter of it, which a waiting worker would. A worker
//     therefore waits inside a frame that keeps a quarter of a 16 KiB stack
//     in use. (Growing the stack again before each task instead measured
//     0.95× and 0.99× the CPU of three one-to-one calls and streams in the
//     load benchmark's fan-out, against 0.87× and 0.89× for this.)
//
// If either changes, a worker costs what a plain goroutine does; nothing
// breaks. One side effect: the runtime starts every new goroutine with a
// stack the size of the average in use at the last collection, and waiting
// workers raise that average. In a process where they are most of the
// goroutines, new goroutines start with 8 KiB instead of 2 KiB (256
// waiting workers and nothing else, measured in review).
package workers
