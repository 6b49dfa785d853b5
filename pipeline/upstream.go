package pipeline

import (
	"context"
	"time"

	"google.golang.org/grpc/codes"
)

// Upstream names one upstream call: the cluster and, for fan-out, the
// member.
type Upstream struct {
	// Cluster is the cluster or fan-out group.
	Cluster string
	// Member is the fan-out member, "" for one-to-one calls.
	Member string
}

type upstreamKey struct{}

// ContextWithUpstream marks ctx as the context of the upstream call u.
// Terminals set it on every upstream call's context, so that client-side
// observers (a grpc stats handler, say) know which upstream a call is.
func ContextWithUpstream(ctx context.Context, u Upstream) context.Context {
	return context.WithValue(ctx, upstreamKey{}, u)
}

// UpstreamFromContext returns the upstream a client call's context was
// marked with.
func UpstreamFromContext(ctx context.Context) (Upstream, bool) {
	u, ok := ctx.Value(upstreamKey{}).(Upstream)
	return u, ok
}

// UpstreamResult is how one upstream call of a proxied call ended.
type UpstreamResult struct {
	Upstream
	// Code is the upstream call's status code (as the proxy judged it: a
	// fan-out member that misbehaved is Internal).
	Code codes.Code
	// Duration from opening the upstream call to its end.
	Duration time.Duration
}

// RecordUpstream adds an upstream call's result to call. Terminals call it
// once per upstream call; it is safe for concurrent use.
func RecordUpstream(call *Call, r UpstreamResult) {
	call.mu.Lock()
	call.upstreams = append(call.upstreams, r)
	call.mu.Unlock()
}

// UpstreamResults returns the upstream results recorded so far for call, in
// the order they were recorded. The slice is shared with the call and
// other readers, without a copy per reader: read it, never change it.
// Results recorded later do not appear in it.
func UpstreamResults(call *Call) []UpstreamResult {
	call.mu.Lock()
	defer call.mu.Unlock()
	n := len(call.upstreams)
	// Capped at n: a later RecordUpstream appends beyond what the
	// caller can see, never into it.
	return call.upstreams[:n:n]
}
