package logging

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"
)

// numCodes is the number of codes gRPC defines, OK (0) to
// Unauthenticated (16).
const numCodes = int(codes.Unauthenticated) + 1

// levels maps each status code to its record's level. Codes past the table
// are logged at error.
type levels [numCodes]slog.Level

// DefaultLevel returns the level of a call that ended with code unless
// [Config.Levels] overrides it: info for OK and the errors a client causes,
// error for the errors of the server or an upstream, and for unknown codes.
func DefaultLevel(code codes.Code) slog.Level {
	switch code {
	case codes.OK,
		codes.Canceled,
		codes.InvalidArgument,
		codes.NotFound,
		codes.AlreadyExists,
		codes.PermissionDenied,
		codes.ResourceExhausted,
		codes.FailedPrecondition,
		codes.OutOfRange,
		codes.Unauthenticated:
		return slog.LevelInfo
	default: // Unknown, DeadlineExceeded, Aborted, Unimplemented, Internal, Unavailable, DataLoss, and codes past 16
		return slog.LevelError
	}
}

func (l *levels) of(c codes.Code) slog.Level {
	if int(c) < len(l) {
		return l[c]
	}
	return slog.LevelError
}

// parseLevels returns the default levels overridden by m, or an error naming
// every bad entry.
func parseLevels(m map[string]string) (levels, error) {
	var l levels
	for c := range l {
		l[c] = DefaultLevel(codes.Code(c))
	}
	var errs []error
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys) // stable error order
	for _, k := range keys {
		c, ok := parseCode(k)
		if !ok {
			errs = append(errs, fmt.Errorf("levels: %q is not a gRPC status code name", k))
			continue
		}
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(m[k])); err != nil {
			errs = append(errs, fmt.Errorf("levels: %s: %q is not a level (debug, info, warn, error)", k, m[k]))
			continue
		}
		l[c] = lv
	}
	return l, errors.Join(errs...)
}

// parseCode reads a code name in any usual spelling: NOT_FOUND, not_found,
// NotFound, CANCELLED, or a number from 0 to 16.
func parseCode(s string) (codes.Code, bool) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 || n >= numCodes {
			return 0, false
		}
		return codes.Code(n), true
	}
	norm := strings.ToLower(strings.ReplaceAll(s, "_", ""))
	if norm == "cancelled" { // the spelling of the gRPC spec and the other languages
		return codes.Canceled, true
	}
	for c := codes.OK; int(c) < numCodes; c++ {
		if strings.ToLower(c.String()) == norm {
			return c, true
		}
	}
	return 0, false
}
