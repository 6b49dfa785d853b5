package tracing

import (
	"context"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/stats"

	"github.com/manifold-grpc/manifold/pipeline"
)

// ServerHandler returns otelgrpc's server stats handler, configured with
// the options' tracer provider, meter provider and propagator. Install it
// on the proxy's server:
//
//	server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(opts...)))
//
// For every call it extracts the client's trace context and baggage,
// starts the server span (named "package.Service/Method", kind server,
// with rpc.system.name, rpc.method, server.address and, at the end,
// rpc.response.status_code and a status of Error only for UNKNOWN,
// DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS),
// and records rpc.server.call.duration. The span is in the call's
// context, so every upstream call, which the terminals derive from that
// context, is its child; the filter ([New]) adds the proxy's attributes to
// it.
func ServerHandler(opts ...Option) stats.Handler {
	o := newOptions(opts)
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(o.tracerProvider),
		otelgrpc.WithMeterProvider(o.meterProvider),
		otelgrpc.WithPropagators(o.propagator),
	)
}

// ClientHandler returns otelgrpc's client stats handler, configured like
// [ServerHandler], that also labels each upstream call with the upstream
// the terminal marked its context with ([pipeline.ContextWithUpstream]):
// manifold.cluster and manifold.member on the client span and on
// rpc.client.call.duration. Install it on every cluster's connection:
//
//	cluster.Config{…, DialOptions: []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(opts...))}}
//
// For every upstream call it starts a client span, a child of the span in
// the call's context (the proxy's server span), injects that span's trace
// context and the call's baggage into the upstream request metadata, and
// records rpc.client.call.duration. Following the conventions for
// clients, the span's status is Error for every code but OK, so a fan-out
// branch cancelled by the policy shows as an Error client span with
// rpc.response.status_code CANCELLED.
func ClientHandler(opts ...Option) stats.Handler {
	o := newOptions(opts)
	return clientHandler{otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(o.tracerProvider),
		otelgrpc.WithMeterProvider(o.meterProvider),
		otelgrpc.WithPropagators(o.propagator),
		otelgrpc.WithMetricAttributesFn(upstreamAttributes),
	)}
}

// clientHandler adds the upstream's attributes to the client span that
// otelgrpc starts. otelgrpc's own span options are static, so the span is
// labelled right after it starts.
type clientHandler struct {
	stats.Handler
}

// TagRPC starts the client span and labels it.
func (h clientHandler) TagRPC(ctx context.Context, info *stats.RPCTagInfo) context.Context {
	u, ok := pipeline.UpstreamFromContext(ctx)
	parent := trace.SpanContextFromContext(ctx).SpanID()
	ctx = h.Handler.TagRPC(ctx, info)
	if !ok {
		return ctx
	}
	span := trace.SpanFromContext(ctx)
	// Label only a span otelgrpc started for this call, never the parent.
	if span.IsRecording() && span.SpanContext().SpanID() != parent {
		span.SetAttributes(upstreamAttrs(u)...)
	}
	return ctx
}

// upstreamAttributes returns the attributes of the upstream that ctx was
// marked with, for otelgrpc's client metrics.
func upstreamAttributes(ctx context.Context) []attribute.KeyValue {
	u, ok := pipeline.UpstreamFromContext(ctx)
	if !ok {
		return nil
	}
	return upstreamAttrs(u)
}

// upstreamAttrs returns u's cluster and, for fan-out, member.
func upstreamAttrs(u pipeline.Upstream) []attribute.KeyValue {
	if u.Member == "" {
		return []attribute.KeyValue{ClusterKey.String(u.Cluster)}
	}
	return []attribute.KeyValue{ClusterKey.String(u.Cluster), MemberKey.String(u.Member)}
}

var _ stats.Handler = clientHandler{}
