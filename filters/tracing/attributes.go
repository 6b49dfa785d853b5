package tracing

import (
	"strconv"

	"go.opentelemetry.io/otel/attribute"
	"google.golang.org/grpc/codes"
)

// ScopeName is the instrumentation scope of the filter's metrics. The spans
// and the rpc.* metrics come from otelgrpc, under otelgrpc's scope.
const ScopeName = "github.com/manifold-grpc/manifold/filters/tracing"

// Attributes the proxy adds to spans and metrics: what only the proxy
// knows. Everything grpc knows (rpc.system.name, rpc.method,
// rpc.response.status_code, server.address, …) is set by otelgrpc with the
// semantic-convention names it follows (semconv v1.43.0 for otelgrpc
// v0.72.0).
const (
	// RouteKey is the name of the route that served the call
	// ([pipeline.Call.Route]): on the server span, on
	// manifold.upstream.calls, and on manifold.server.active_calls when
	// the filter runs in a route's chain (in the global chain the route is
	// not known yet when the call starts).
	RouteKey attribute.Key = "manifold.route"
	// ClusterKey is the upstream cluster (or fan-out group): on every
	// upstream client span, on rpc.client.call.duration and
	// manifold.upstream.calls, and on the server span.
	ClusterKey attribute.Key = "manifold.cluster"
	// MemberKey is the fan-out member of an upstream call, absent for
	// one-to-one calls: on upstream client spans, rpc.client.call.duration
	// and manifold.upstream.calls.
	MemberKey attribute.Key = "manifold.member"
	// UpstreamCountKey is, on the server span, how many upstream calls the
	// call made: 1 for one-to-one, the number of targets for fan-out, 0 when
	// the call ended before reaching an upstream.
	UpstreamCountKey attribute.Key = "manifold.upstream.count"
	// UpstreamFailedKey is, on the server span, how many upstream calls
	// failed: ended with a code other than OK and CANCELLED (a fan-out
	// branch cancelled because the policy no longer needed it is not a
	// failure).
	UpstreamFailedKey attribute.Key = "manifold.upstream.failed"
	// FailedMembersKey is, on the server span of a fan-out call with
	// failures, the names of the members that failed, in the order their
	// results were recorded.
	FailedMembersKey attribute.Key = "manifold.upstream.failed_members"
	// FanoutPolicyKey is, on the server span of a fan-out call, the group's
	// policy ("all", "first", "quorum:2", "+fail_fast" when set).
	FanoutPolicyKey attribute.Key = "manifold.fanout.policy"
	// StatusCodeKey is the semantic-convention status attribute, as
	// otelgrpc writes it: the canonical gRPC code name ("OK", "NOT_FOUND").
	StatusCodeKey attribute.Key = "rpc.response.status_code"
)

// Metric names of the filter's own instruments.
const (
	// UpstreamCallsMetric counts upstream calls by route, cluster, member
	// and rpc.response.status_code, the code as the proxy judged it (a
	// fan-out member that answered a unary call with no message is
	// INTERNAL; a branch the policy cancelled is CANCELLED).
	UpstreamCallsMetric = "manifold.upstream.calls"
	// ActiveCallsMetric is the number of calls in flight through the
	// filter.
	ActiveCallsMetric = "manifold.server.active_calls"
)

// codeName is the canonical name of a gRPC code, as the semantic
// conventions and otelgrpc spell it.
func codeName(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	case codes.Unknown:
		return "UNKNOWN"
	case codes.InvalidArgument:
		return "INVALID_ARGUMENT"
	case codes.DeadlineExceeded:
		return "DEADLINE_EXCEEDED"
	case codes.NotFound:
		return "NOT_FOUND"
	case codes.AlreadyExists:
		return "ALREADY_EXISTS"
	case codes.PermissionDenied:
		return "PERMISSION_DENIED"
	case codes.ResourceExhausted:
		return "RESOURCE_EXHAUSTED"
	case codes.FailedPrecondition:
		return "FAILED_PRECONDITION"
	case codes.Aborted:
		return "ABORTED"
	case codes.OutOfRange:
		return "OUT_OF_RANGE"
	case codes.Unimplemented:
		return "UNIMPLEMENTED"
	case codes.Internal:
		return "INTERNAL"
	case codes.Unavailable:
		return "UNAVAILABLE"
	case codes.DataLoss:
		return "DATA_LOSS"
	case codes.Unauthenticated:
		return "UNAUTHENTICATED"
	}
	return "CODE(" + strconv.FormatUint(uint64(c), 10) + ")"
}
