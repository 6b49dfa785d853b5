// Package child runs the benchmarks' child processes (a backend, a proxy)
// and keeps the last lines of their output for error messages.
//
// A [Process] joins the child's standard output and error into one pipe,
// read line by line by one goroutine, and kills the child if the driver
// dies (Linux's parent-death signal).
package child
