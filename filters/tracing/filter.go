package tracing

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Filter adds what only the proxy knows to the telemetry that otelgrpc's
// stats handlers ([ServerHandler], [ClientHandler]) record: the route, the
// upstream cluster and the fan-out outcome on the server span, and the
// manifold.upstream.calls and manifold.server.active_calls metrics. It has
// header hooks only (request headers and the end of the call), so a chain
// that holds it still needs no messages.
//
// Without [ServerHandler] on the server the call has no server span and the
// filter records only its metrics.
//
// A Filter is safe for concurrent use. A call is recorded once, even when
// it passes two tracing filters (one in the global chain, one in a route's
// chain) or the same one twice.
//
// The filter counts with atomic adds and the meter provider's readers read
// the counts when they collect (see [meters]). It keeps the attributes of
// each route and of each manifold.upstream.calls series, built once, not
// once per call: up to 1999 routes per filter (past that, it builds them
// per call) and 1999 series per meter provider (past that, calls are
// counted in one series with otel.metric.overflow=true, as the OTel SDK
// does past its own cardinality limit, 2000 data points by default).
type Filter struct {
	requestMetadata []string
	meters          *meters

	// routed holds the state of the calls of each route ("" for calls
	// without one), built once per route, not once per call (see
	// [attrCache]).
	routed *attrCache[string, *callState]
}

// New returns the filter. It uses the options' meter provider and request
// metadata keys; the tracer provider and propagator belong to the stats
// handlers.
func New(opts ...Option) (*Filter, error) {
	o := newOptions(opts)
	if err := validateMetadataKeys(o.requestMetadata); err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	f := &Filter{requestMetadata: append([]string(nil), o.requestMetadata...)}
	var err error
	if f.meters, err = metersFor(o.meterProvider, o.cacheSize); err != nil {
		return nil, err
	}
	newState := func(route string) *callState {
		return &callState{owner: f, active: f.meters.route(route)}
	}
	f.routed = newAttrCache(o.cacheSize, newState, newState)
	return f, nil
}

// Name returns "tracing".
func (*Filter) Name() string { return "tracing" }

// callState is what the filter keeps for a call between its two hooks.
// Every call of a route shares one callState (see [Filter.routed]), so
// it is never changed after it is built.
type callState struct {
	owner *Filter
	// active is the count the call was counted in flight in, so that it
	// is counted out of the same one.
	active *count
}

var stateKey = pipeline.NewKey[*callState]("tracing")

// OnRequestHeaders counts the call in flight and records the chosen
// request metadata on the server span.
func (f *Filter) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	if _, seen := stateKey.Get(call); seen {
		return nil // an outer tracing filter records the call
	}
	st := f.routed.get(call.Route)
	stateKey.Set(call, st)
	st.active.n.Add(1)

	if len(f.requestMetadata) == 0 {
		return nil
	}
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return nil
	}
	for _, k := range f.requestMetadata {
		if v := call.Inbound.Get(k); len(v) > 0 {
			span.SetAttributes(semconv.RPCRequestMetadata(k, v...))
		}
	}
	return nil
}

// OnResponseEnd counts the call out, counts its upstream calls, and
// records the route and the upstream outcome on the server span. It leaves
// the span's status to otelgrpc, which sets it from the status the client
// gets.
func (f *Filter) OnResponseEnd(ctx context.Context, call *pipeline.Call, _ *pipeline.End) {
	st, ok := stateKey.Get(call)
	if !ok || st.owner != f {
		return
	}
	// Once only, even when the same filter is in the chain twice.
	stateKey.Delete(call)
	st.active.n.Add(-1)

	results := pipeline.UpstreamResults(call)
	span := trace.SpanFromContext(ctx)
	recording := span.IsRecording()
	var (
		clusters      []string
		failed        int
		failedMembers []string
	)
	for _, r := range results {
		f.meters.series.get(upstreamKey{call.Route, r.Cluster, r.Member, r.Code}).n.Add(1)

		if !recording {
			continue // the outcome is only for the span
		}
		if !slices.Contains(clusters, r.Cluster) {
			clusters = append(clusters, r.Cluster)
		}
		if r.Code != codes.OK && r.Code != codes.Canceled {
			failed++
			if r.Member != "" {
				failedMembers = append(failedMembers, r.Member)
			}
		}
	}

	if !recording {
		return
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	if call.Route != "" {
		attrs = append(attrs, RouteKey.String(call.Route))
	}
	if len(clusters) > 0 {
		attrs = append(attrs, ClusterKey.String(strings.Join(clusters, ",")))
	}
	attrs = append(attrs, UpstreamCountKey.Int(len(results)), UpstreamFailedKey.Int(failed))
	if len(failedMembers) > 0 {
		attrs = append(attrs, FailedMembersKey.StringSlice(failedMembers))
	}
	if p, ok := fanout.PolicyKey.Get(call); ok {
		attrs = append(attrs, FanoutPolicyKey.String(p))
	}
	span.SetAttributes(attrs...)
}

var (
	_ pipeline.RequestHeadersHook = (*Filter)(nil)
	_ pipeline.ResponseEndHook    = (*Filter)(nil)
)
