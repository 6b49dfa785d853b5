package tracing_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// runFilter runs f's hooks on call as a chain would, the upstream results
// recorded in between, inside a server span; it returns the ended span.
func runFilter(t *testing.T, tel *telemetry, f *tracing.Filter, call *pipeline.Call, results ...pipeline.UpstreamResult) sdktrace.ReadOnlySpan {
	t.Helper()
	ctx, span := tel.tp.Tracer("test").Start(context.Background(), "server", trace.WithSpanKind(trace.SpanKindServer))
	if err := f.OnRequestHeaders(ctx, call); err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		pipeline.RecordUpstream(call, r)
	}
	f.OnResponseEnd(ctx, call, &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}})
	span.End()
	ended := tel.spans.Ended()
	return ended[len(ended)-1]
}

// The filter alone, on a fan-out call's results: the outcome and the
// chosen request metadata on the span, one count per member.
func TestFilterRecordsOutcome(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	f := tel.filter(t, tracing.WithRequestMetadata("x-tenant", "x-absent"))
	call := &pipeline.Call{
		Method:  "/pkg.Svc/Get",
		Route:   "nodes",
		Inbound: metadata.Pairs("x-tenant", "acme", "x-tenant", "beta", "authorization", "Bearer secret"),
		Header:  metadata.MD{},
	}
	span := runFilter(t, tel, f, call,
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "g", Member: "a"}, Code: codes.OK, Duration: time.Millisecond},
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "g", Member: "b"}, Code: codes.Unavailable, Duration: time.Millisecond},
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "g", Member: "c"}, Code: codes.Canceled, Duration: time.Millisecond},
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "g", Member: "d"}, Code: codes.Internal, Duration: time.Millisecond},
	)
	for key, want := range map[string]string{
		"manifold.route":                   "nodes",
		"manifold.cluster":                 "g",
		"manifold.upstream.count":          "4",
		"manifold.upstream.failed":         "2",
		"manifold.upstream.failed_members": `["b","d"]`,
		"rpc.request.metadata.x-tenant":    `["acme","beta"]`,
	} {
		if got := attrString(span, attributeKey(key)); got != want {
			t.Errorf("%s = %s, want %s", key, got, want)
		}
	}
	for _, key := range []string{"rpc.request.metadata.x-absent", "rpc.request.metadata.authorization"} {
		if _, ok := attr(span, attributeKey(key)); ok {
			t.Errorf("span has %s", key)
		}
	}

	rm := tel.collect(t)
	sum := findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	for member, code := range map[string]string{"a": "OK", "b": "UNAVAILABLE", "c": "CANCELLED", "d": "INTERNAL"} {
		want := set(tracing.RouteKey.String("nodes"), tracing.ClusterKey.String("g"), tracing.MemberKey.String(member), tracing.StatusCodeKey.String(code))
		if v, ok := sumAt(sum, want); !ok || v != 1 {
			t.Errorf("%s{%s} = %d (found %v), want 1", tracing.UpstreamCallsMetric, want.Encoded(attributeEncoder), v, ok)
		}
	}
	checkActive(t, findMetric(t, rm, tracing.ActiveCallsMetric), set(tracing.RouteKey.String("nodes")), 0)
}

// Upstream calls to more than one cluster name them all on the server span.
func TestFilterSeveralClusters(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	span := runFilter(t, tel, tel.filter(t), &pipeline.Call{Method: "/pkg.Svc/Get"},
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "primary"}, Code: codes.Unavailable},
		pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "fallback"}, Code: codes.OK},
	)
	if got := attrString(span, tracing.ClusterKey); got != "primary,fallback" {
		t.Errorf("manifold.cluster = %q, want primary,fallback", got)
	}
	if _, ok := attr(span, tracing.RouteKey); ok {
		t.Error("a call without a route has manifold.route")
	}
	if _, ok := attr(span, tracing.FailedMembersKey); ok {
		t.Error("one-to-one failures are listed as members")
	}
}

// Without a server span (no ServerHandler installed) the filter still
// counts; with an unsampled one it sets nothing.
func TestFilterWithoutSpan(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	f := tel.filter(t)
	for _, ctx := range []context.Context{
		context.Background(),
		trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
			TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1},
		})),
	} {
		call := &pipeline.Call{Method: "/pkg.Svc/Get"}
		if err := f.OnRequestHeaders(ctx, call); err != nil {
			t.Fatal(err)
		}
		pipeline.RecordUpstream(call, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "c"}, Code: codes.OK})
		f.OnResponseEnd(ctx, call, &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}})
	}
	sum := findMetric(t, tel.collect(t), tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	if v, ok := sumAt(sum, set(tracing.ClusterKey.String("c"), tracing.StatusCodeKey.String("OK"))); !ok || v != 2 {
		t.Errorf("counted %d, want 2", v)
	}
}

// The filter is header-only: a chain holding it needs no messages.
func TestFilterIsHeaderOnly(t *testing.T) {
	t.Parallel()
	f, err := tracing.New()
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "tracing" {
		t.Errorf("name %q", f.Name())
	}
	chain, err := pipeline.Build([]pipeline.Filter{f}, pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := chain.Touches(), pipeline.TouchRequestHeaders|pipeline.TouchResponseEnd; got != want || got.NeedsMessages() {
		t.Errorf("touches %b, want %b (no messages)", got, want)
	}
}
