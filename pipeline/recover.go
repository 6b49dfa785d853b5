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
	r := recover()
	if r == nil {
		return
	}
	log.Error("filter panicked",
		slog.String("filter", filter),
		slog.String("hook", hook),
		slog.String("panic", fmt.Sprint(r)),
		slog.String("stack", string(debug.Stack())))
	*err = status.Errorf(codes.Internal, "%s: internal error in filter", filter)
}
