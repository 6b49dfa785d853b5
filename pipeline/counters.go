package pipeline

import (
	"context"
	"sync/atomic"
)

// Counters count a call's messages and bytes (uncompressed) each way. The
// server counts them as they pass its stream, so filters that report them
// (access logs, metrics) need no message hooks and stay header-only.
// The server keeps them only when its chain reports [TouchCounters] (a
// filter implementing [CountersUser]) or it was told to.
type Counters struct {
	RequestMessages, RequestBytes   atomic.Int64
	ResponseMessages, ResponseBytes atomic.Int64
}

type countersKey struct{}

// ContextWithCounters attaches c to a call's context.
func ContextWithCounters(ctx context.Context, c *Counters) context.Context {
	return context.WithValue(ctx, countersKey{}, c)
}

// CountersFromContext returns the call's counters, or nil when the server
// does not count (a chain run outside server.Server).
func CountersFromContext(ctx context.Context) *Counters {
	c, _ := ctx.Value(countersKey{}).(*Counters)
	return c
}
