// Package tracing adds OpenTelemetry traces and metrics to the proxy.
//
// grpc-go already knows most of a call: its method, its peers, its status,
// how long it took. otelgrpc's stats handlers turn that into spans and
// metrics with the RPC semantic conventions, and carry W3C trace context
// and baggage across hops. This package reuses them, configured once
// ([ServerHandler], [ClientHandler]), and adds only what the proxy knows
// ([Filter]): the route, the upstream cluster and fan-out member, and how
// the fan-out went.
//
// # Wiring
//
// Three pieces, given the same options:
//
//	opts := []tracing.Option{
//		tracing.WithTracerProvider(tp), // default: otel's global providers
//		tracing.WithMeterProvider(mp),
//	}
//	// 1. A client span per upstream call, with the trace context injected.
//	cl, _ := cluster.New(cluster.Config{Name: "backend", Target: "dns:///backend:9090",
//		DialOptions: []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(opts...))}})
//	// 2. The proxy's attributes and metrics: a filter, outermost.
//	f, _ := tracing.New(opts...)
//	chain, _ := pipeline.Build([]pipeline.Filter{f, auth, …}, route.New(cl))
//	// 3. The server span of every call, and the client's trace context.
//	srv, _ := server.New(chain, server.WithCloser(cl),
//		server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(opts...))))
//
// In a config file the filter is named "tracing" (see [Config]) and uses
// otel's global providers; the program installs the two stats handlers.
//
// # The span tree
//
// The server handler starts the server span before the chain runs and puts
// it in the call's context; the terminals derive every upstream call's
// context from it, so each upstream call (the one-to-one call, or every
// fan-out branch) gets a client span that is the server span's child, and
// the upstream receives that client span's trace context:
//
//	client span ─► proxy server span "pkg.Service/Method"
//	                 ├─ client span  manifold.cluster=nodes manifold.member=n0 ─► n0's server span
//	                 ├─ client span  manifold.cluster=nodes manifold.member=n1 ─► n1's server span
//	                 └─ client span  manifold.cluster=nodes manifold.member=n2 ─► n2's server span
//
// The server span's status is Error only for UNKNOWN, DEADLINE_EXCEEDED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS, as the conventions
// say for servers (a NOT_FOUND from the upstream is the client's problem);
// a client span's status is Error for every code but OK, as they say for
// clients. otelgrpc sets both.
//
// # Attributes
//
// otelgrpc sets rpc.system.name, rpc.method, rpc.response.status_code,
// server.address and server.port (semconv v1.43.0). The proxy adds:
//
//	attribute                          where
//	manifold.route                     server span; manifold.* metrics
//	manifold.cluster                   client spans, server span; rpc.client.call.duration, manifold.upstream.calls
//	manifold.member                    client spans of fan-out calls; rpc.client.call.duration, manifold.upstream.calls
//	manifold.upstream.count            server span: upstream calls made
//	manifold.upstream.failed           server span: upstream calls that failed (not OK, not CANCELLED)
//	manifold.upstream.failed_members   server span: fan-out members that failed
//	manifold.fanout.policy             server span: the fan-out policy (all, first, quorum:N, +fail_fast)
//	rpc.request.metadata.<key>         server span, for the keys of [WithRequestMetadata]
//
// # Metrics
//
// Each instrument comes from one place; none is recorded twice:
//
//	instrument                     from               attributes
//	rpc.server.call.duration (s)   [ServerHandler]    rpc.system.name, rpc.method, rpc.response.status_code, error.type
//	rpc.client.call.duration (s)   [ClientHandler]    the same, server.address/port, manifold.cluster, manifold.member
//	manifold.upstream.calls        [Filter]           manifold.route, manifold.cluster, manifold.member, rpc.response.status_code
//	manifold.server.active_calls   [Filter]           manifold.route (when the filter is in a route's chain)
//
// The filter's two metrics are asynchronous: the filters count with
// atomic adds, and the meter provider's readers read the counts when they
// collect. Every filter on one meter provider shares the counts, so a
// config reload neither drops nor doubles the calls in flight, and the
// upstream call counts carry on. manifold.upstream.calls keeps up to 1999
// series per meter provider; calls of further series are counted in one
// series with otel.metric.overflow=true ([OverflowKey]), as the OTel SDK
// does past its own cardinality limit (2000 data points by default, one of
// them its overflow). Counted outside the call's context, the two metrics
// carry no exemplars; rpc.server.call.duration and
// rpc.client.call.duration from otelgrpc do.
//
// otel's global meter provider (the default) is one provider for this
// purpose, before and after the program sets the real one. A filter given
// the real provider with [WithMeterProvider] while others use the global
// one makes a second set of counts, and a reader would see the same series
// from both (the SDK adds them up): give every filter the same one.
//
// The duration of each upstream call is rpc.client.call.duration, labelled
// with its cluster and member. manifold.upstream.calls counts upstream
// calls with the code as the proxy judged it, which can differ from the
// code on the wire: a fan-out member that answered a unary call with no
// message is INTERNAL, and a branch cancelled by the "first" or "quorum"
// policy is CANCELLED.
//
// A transparent proxy forwards methods it does not know, so rpc.method
// (set by otelgrpc) takes whatever method names clients send; put the
// proxy behind routes that match known services when clients are not
// trusted.
package tracing
