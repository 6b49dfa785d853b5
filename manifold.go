package manifold

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs the manifold command line with the process's arguments and
// exits with its status. A program that adds its own filters registers them
// (pipeline.Register, in an init function) and calls Main: its filters can
// then be named in config files next to the built-ins.
//
//	package main
//
//	import (
//		"github.com/manifold-grpc/manifold"
//		_ "example.com/myfilters/tenant" // registers "tenant"
//	)
//
//	func main() { manifold.Main() }
//
// Main sets the garbage collector's target to [DefaultGCPercent] unless
// GOGC is set; [Run] leaves the process's runtime settings alone.
func Main() {
	setGCDefault()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		<-ctx.Done()
		// The first signal starts the drain; restoring the default
		// handling lets a second one end the process at once.
		stop()
	}()
	os.Exit(Run(ctx, os.Args[1:], os.Stderr))
}

// Run runs the command line with args (without the program name) until
// ctx ends, logging to stderr, and returns the exit status: 0 after a
// clean stop, 1 when serving failed, 2 for bad usage.
func Run(ctx context.Context, args []string, stderr io.Writer) int {
	return run(ctx, args, stderr, nil)
}
