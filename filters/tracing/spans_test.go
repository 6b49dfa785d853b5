package tracing_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/baggage"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

const unaryName = "grpc.testing.TestService/UnaryCall"

// startEcho starts an instrumented backend that records what it saw.
func startEcho(t *testing.T, tel *telemetry, unary func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error)) (string, *recorder) {
	t.Helper()
	rec := &recorder{}
	svc := &testbackend.Service{Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		rec.record(ctx)
		if unary != nil {
			return unary(ctx, req)
		}
		return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
	}}
	addr, _ := testbackend.Start(t, svc, grpc.StatsHandler(tel.backendHandler()))
	return addr, rec
}

// parentID returns the parent-id field of a W3C traceparent header.
func parentID(t *testing.T, traceparent string) string {
	t.Helper()
	parts := strings.Split(traceparent, "-")
	if len(parts) != 4 {
		t.Fatalf("traceparent %q is not version-traceid-parentid-flags", traceparent)
	}
	return parts[2]
}

// An instrumented client calls through the proxy to an instrumented
// backend: four spans, one trace, each the parent of the next, the
// proxy's labelled with the route and cluster; the backend receives the
// client's trace id, the proxy's client span as parent, and the baggage.
func TestOneToOneSpanTree(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	addr, rec := startEcho(t, tel, nil)
	env := startOneToOne(t, tel, addr, tel.filter(t), nil, grpc.WithStatsHandler(tel.clientHandler()))

	member, err := baggage.NewMember("tenant", "acme")
	if err != nil {
		t.Fatal(err)
	}
	bag, err := baggage.New(member)
	if err != nil {
		t.Fatal(err)
	}
	ctx := baggage.ContextWithBaggage(callCtx(t), bag)
	if _, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}

	spans := tel.waitSpans(t, 4)
	var roots []int
	for i, s := range spans {
		if !s.Parent().IsValid() {
			roots = append(roots, i)
		}
		if s.Name() != unaryName {
			t.Errorf("span %q, want every span named %q", s.Name(), unaryName)
		}
		if s.SpanContext().TraceID() != spans[0].SpanContext().TraceID() {
			t.Errorf("span %s in trace %s, want one trace %s", s.SpanContext().SpanID(), s.SpanContext().TraceID(), spans[0].SpanContext().TraceID())
		}
	}
	if len(roots) != 1 || spans[roots[0]].SpanKind() != trace.SpanKindClient {
		t.Fatalf("want one root, the client's span:\n%s", describe(spans))
	}
	root := spans[roots[0]]
	proxy := childrenOf(spans, root, trace.SpanKindServer)
	if len(proxy) != 1 || !proxy[0].Parent().IsRemote() {
		t.Fatalf("want the proxy's server span as the client span's remote child:\n%s", describe(spans))
	}
	upstream := childrenOf(spans, proxy[0], trace.SpanKindClient)
	if len(upstream) != 1 || upstream[0].Parent().IsRemote() {
		t.Fatalf("want one upstream client span as the proxy server span's local child:\n%s", describe(spans))
	}
	backend := childrenOf(spans, upstream[0], trace.SpanKindServer)
	if len(backend) != 1 || !backend[0].Parent().IsRemote() {
		t.Fatalf("want the backend's server span as the upstream client span's remote child:\n%s", describe(spans))
	}

	// What the proxy knows, on its two spans.
	for key, want := range map[string]string{
		"manifold.route":           oneToOne,
		"manifold.cluster":         "backend",
		"manifold.upstream.count":  "1",
		"manifold.upstream.failed": "0",
		"rpc.system.name":          "grpc",
		"rpc.method":               unaryName,
		"rpc.response.status_code": "OK",
	} {
		if got := attrString(proxy[0], attributeKey(key)); got != want {
			t.Errorf("proxy server span: %s = %q, want %q", key, got, want)
		}
	}
	if got := attrString(upstream[0], tracing.ClusterKey); got != "backend" {
		t.Errorf("upstream client span: manifold.cluster = %q, want backend", got)
	}
	if _, ok := attr(upstream[0], tracing.MemberKey); ok {
		t.Error("upstream client span of a one-to-one call has manifold.member")
	}
	if _, ok := attr(proxy[0], tracing.FailedMembersKey); ok {
		t.Error("proxy server span of a successful call has manifold.upstream.failed_members")
	}

	// What the backend received.
	got := rec.last(t)
	if got.spanContext.TraceID() != root.SpanContext().TraceID() {
		t.Errorf("backend's trace id %s, want the client's %s", got.spanContext.TraceID(), root.SpanContext().TraceID())
	}
	if p := parentID(t, got.traceparent); p != upstream[0].SpanContext().SpanID().String() {
		t.Errorf("backend's traceparent parent-id %s, want the proxy's client span %s", p, upstream[0].SpanContext().SpanID())
	}
	if v := got.baggage.Member("tenant").Value(); v != "acme" {
		t.Errorf("backend's baggage tenant = %q, want acme", v)
	}
}

// A client without OpenTelemetry sends a traceparent header by hand: the
// proxy joins that trace, and the backend receives the same trace id with
// the proxy's client span, not the client's span, as parent.
func TestTraceparentFromPlainClient(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	addr, rec := startEcho(t, tel, nil)
	env := startOneToOne(t, tel, addr, tel.filter(t), nil)

	const (
		traceID    = "4bf92f3577b34da6a3ce929d0e0e4736"
		clientSpan = "00f067aa0ba902b7"
	)
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-"+traceID+"-"+clientSpan+"-01")
	if _, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}

	spans := tel.waitSpans(t, 3) // proxy server, proxy client, backend server
	proxy := proxyServerSpans(spans)
	if len(proxy) != 1 {
		t.Fatalf("want one proxy server span:\n%s", describe(spans))
	}
	if p := proxy[0].Parent(); p.TraceID().String() != traceID || p.SpanID().String() != clientSpan || !p.IsRemote() {
		t.Errorf("proxy server span's parent %s/%s (remote %v), want the client's %s/%s", p.TraceID(), p.SpanID(), p.IsRemote(), traceID, clientSpan)
	}
	upstream := childrenOf(spans, proxy[0], trace.SpanKindClient)
	if len(upstream) != 1 {
		t.Fatalf("want one upstream client span:\n%s", describe(spans))
	}
	got := rec.last(t)
	if got.spanContext.TraceID().String() != traceID {
		t.Errorf("backend's trace id %s, want the client's %s", got.spanContext.TraceID(), traceID)
	}
	if p := parentID(t, got.traceparent); p != upstream[0].SpanContext().SpanID().String() {
		t.Errorf("backend's traceparent parent-id %s, want the proxy's client span %s (the client's was %s)", p, upstream[0].SpanContext().SpanID(), clientSpan)
	}
}

// Trace context and baggage reach the backend through the proxy's
// propagator even when the headers the client sent are not forwarded: the
// server handler extracted them into the call's context, and the client
// handler injected them into the upstream call.
func TestPropagationThroughContext(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	addr, rec := startEcho(t, tel, nil)
	var proxySawTenant string
	strip := pipeline.RequestHeadersFunc("strip", func(ctx context.Context, call *pipeline.Call) error {
		proxySawTenant = baggage.FromContext(ctx).Member("tenant").Value()
		delete(call.Header, "traceparent")
		delete(call.Header, "tracestate")
		delete(call.Header, "baggage")
		return nil
	})
	env := startOneToOne(t, tel, addr, tel.filter(t), []pipeline.Filter{strip})

	const traceID = "0af7651916cd43dd8448eb211c80319c"
	ctx := metadata.AppendToOutgoingContext(callCtx(t),
		"traceparent", "00-"+traceID+"-b7ad6b7169203331-01",
		"baggage", "tenant=acme,region=eu")
	if _, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	tel.waitSpans(t, 3)

	if proxySawTenant != "acme" {
		t.Errorf("the proxy's filters see baggage tenant %q, want acme", proxySawTenant)
	}
	got := rec.last(t)
	if got.spanContext.TraceID().String() != traceID {
		t.Errorf("backend's trace id %s, want %s", got.spanContext.TraceID(), traceID)
	}
	if v := got.baggage.Member("region").Value(); v != "eu" {
		t.Errorf("backend's baggage region = %q (header %q), want eu", v, got.baggageHdr)
	}
}

// The proxy's server span is an Error only for the codes the conventions
// name for servers; its upstream client span, following the conventions
// for clients, for every code but OK. The filter counts the failure either
// way.
func TestStatusMapping(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code        codes.Code
		serverError bool
	}{
		{codes.NotFound, false},
		{codes.InvalidArgument, false},
		{codes.PermissionDenied, false},
		{codes.Internal, true},
		{codes.Unavailable, true},
		{codes.Unknown, true},
		{codes.DataLoss, true},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			t.Parallel()
			tel := newTelemetry(t)
			addr, _ := startEcho(t, tel, func(context.Context, *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
				return nil, status.Error(tc.code, "backend says no")
			})
			env := startOneToOne(t, tel, addr, tel.filter(t), nil)
			_, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{})
			if status.Code(err) != tc.code {
				t.Fatalf("call: %v, want %v", err, tc.code)
			}
			spans := tel.waitSpans(t, 3)
			proxy := proxyServerSpans(spans)
			if len(proxy) != 1 {
				t.Fatalf("want one proxy server span:\n%s", describe(spans))
			}
			want := otelcodes.Unset
			if tc.serverError {
				want = otelcodes.Error
			}
			if got := proxy[0].Status(); got.Code != want {
				t.Errorf("proxy server span status %v %q, want %v", got.Code, got.Description, want)
			} else if tc.serverError && got.Description != "backend says no" {
				t.Errorf("proxy server span status description %q, want the status message", got.Description)
			}
			if got, want := attrString(proxy[0], tracing.StatusCodeKey), codeNameOf(tc.code); got != want {
				t.Errorf("proxy server span rpc.response.status_code %q, want %q", got, want)
			}
			if got := attrString(proxy[0], tracing.UpstreamFailedKey); got != "1" {
				t.Errorf("proxy server span manifold.upstream.failed = %q, want 1", got)
			}
			upstream := childrenOf(spans, proxy[0], trace.SpanKindClient)
			if len(upstream) != 1 || upstream[0].Status().Code != otelcodes.Error {
				t.Errorf("want the upstream client span with status Error:\n%s", describe(spans))
			}
		})
	}
}

// A filter after tracing answers locally: the server span says no
// upstream was called, and its status follows the local reply's code.
func TestLocalReply(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	addr, rec := startEcho(t, tel, nil)
	deny := pipeline.RequestHeadersFunc("deny", func(context.Context, *pipeline.Call) error {
		return status.Error(codes.PermissionDenied, "deny: no")
	})
	env := startOneToOne(t, tel, addr, tel.filter(t), []pipeline.Filter{deny})
	if _, err := env.Client.UnaryCall(callCtx(t), &testgrpc.SimpleRequest{}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("call: %v, want PermissionDenied", err)
	}
	spans := tel.waitSpans(t, 1)
	proxy := proxyServerSpans(spans)
	if len(proxy) != 1 {
		t.Fatalf("want the proxy server span only:\n%s", describe(spans))
	}
	if got := attrString(proxy[0], tracing.UpstreamCountKey); got != "0" {
		t.Errorf("manifold.upstream.count = %q, want 0", got)
	}
	if _, ok := attr(proxy[0], tracing.ClusterKey); ok {
		t.Error("a call that reached no upstream has manifold.cluster")
	}
	if got := proxy[0].Status().Code; got != otelcodes.Unset {
		t.Errorf("status %v, want Unset for PERMISSION_DENIED", got)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.calls) != 0 {
		t.Errorf("the backend saw %d calls, want none", len(rec.calls))
	}
}
