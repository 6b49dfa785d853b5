package pipeline

import (
	"fmt"
	"log/slog"
	"runtime/debug"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// recoverFilter turns a panic in a filter's hook into an Internal status for
// this call, and logs it with its stack. It must be deferred directly.
func recoverFilter(err *error, filter, hook string, log *slog.Logger) {
	if r := recover(); r != nil {
		*err = filterPanicked(r, filter, hook, log)
	}
}

// filterPanicked logs a recovered panic of a filter and returns the status
// that ends the call.
func filterPanicked(r any, filter, hook string, log *slog.Logger) error {
	log.Error("filter panicked",
		slog.String("filter", filter),
		slog.String("hook", hook),
		slog.String("panic", fmt.Sprint(r)),
		slog.String("stack", string(debug.Stack())))
	return status.Errorf(codes.Internal, "%s: internal error in filter", filter)
}
