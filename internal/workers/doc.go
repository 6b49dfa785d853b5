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
//   - The garbage collector halves the stack of a parked goroutine that
//     uses less than a quarter of it. A worker therefore parks inside a
//     frame that keeps a quarter of a 16 KiB stack in use.
//   - A new worker grows its stack first thing ([stack.Grow]), where
//     the copy is cheap.
//
// If either changes, a worker costs what a plain goroutine does; nothing
// breaks.
package workers
