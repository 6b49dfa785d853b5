package tracing_test

import (
	"context"
	"slices"
	"testing"

	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

// A 3-way fan-out with one failing member: one server span, three client
// spans under it, one per member and each labelled with it, each the
// parent of that member's server span; the server span tells the outcome;
// manifold.upstream.calls and rpc.client.call.duration are per member.
func TestFanoutSpanTree(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	g := startGroup(t, tel, 3, func(i int, m *machine) {
		if i == 1 {
			m.version = func(context.Context) (*clusterpb.VersionResponse, error) {
				return nil, status.Error(codes.Unavailable, "n1 is down")
			}
		}
	}, fanout.Config{})

	resp, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetMessages()); n != 3 {
		t.Fatalf("%d items, want 3 (two answers, one error item)", n)
	}

	spans := tel.waitSpans(t, 7) // proxy server, 3 proxy clients, 3 member servers
	proxy := proxyServerSpans(spans)
	if len(proxy) != 1 {
		t.Fatalf("want one proxy server span:\n%s", describe(spans))
	}
	server := proxy[0]
	if server.Parent().IsValid() {
		t.Errorf("the proxy server span of an uninstrumented client's call has parent %s, want a root", server.Parent().SpanID())
	}
	branches := childrenOf(spans, server, trace.SpanKindClient)
	if len(branches) != 3 {
		t.Fatalf("%d client spans under the server span, want 3:\n%s", len(branches), describe(spans))
	}
	var members []string
	for _, b := range branches {
		member := attrString(b, tracing.MemberKey)
		members = append(members, member)
		if got := attrString(b, tracing.ClusterKey); got != groupName {
			t.Errorf("branch %s: manifold.cluster = %q, want %q", member, got, groupName)
		}
		if b.Name() != "manifold.cluster.v1.Machine/Version" {
			t.Errorf("branch %s named %q", member, b.Name())
		}
		wantStatus, wantCode := otelcodes.Unset, "OK"
		if member == "n1" {
			wantStatus, wantCode = otelcodes.Error, "UNAVAILABLE"
		}
		if b.Status().Code != wantStatus || attrString(b, tracing.StatusCodeKey) != wantCode {
			t.Errorf("branch %s: status %v, rpc.response.status_code %q; want %v, %q", member, b.Status().Code, attrString(b, tracing.StatusCodeKey), wantStatus, wantCode)
		}
		// The member's own server span is the branch's child, and the
		// member received the branch's span as parent.
		if kids := childrenOf(spans, b, trace.SpanKindServer); len(kids) != 1 {
			t.Errorf("branch %s has %d server spans under it, want its member's", member, len(kids))
		}
		for _, m := range g.machines {
			if m.name != member {
				continue
			}
			got := m.seen.last(t)
			if got.spanContext.TraceID() != server.SpanContext().TraceID() || parentID(t, got.traceparent) != b.SpanContext().SpanID().String() {
				t.Errorf("member %s got traceparent %q, want trace %s, parent %s", member, got.traceparent, server.SpanContext().TraceID(), b.SpanContext().SpanID())
			}
		}
	}
	slices.Sort(members)
	if !slices.Equal(members, []string{"n0", "n1", "n2"}) {
		t.Errorf("branches for members %v, want n0 n1 n2", members)
	}

	// The outcome, on the server span; the call itself succeeded.
	for key, want := range map[string]string{
		"manifold.cluster":                 groupName,
		"manifold.upstream.count":          "3",
		"manifold.upstream.failed":         "1",
		"manifold.upstream.failed_members": `["n1"]`,
		"manifold.fanout.policy":           "all",
		"rpc.response.status_code":         "OK",
	} {
		if got := attrString(server, attributeKey(key)); got != want {
			t.Errorf("server span: %s = %s, want %s", key, got, want)
		}
	}
	if server.Status().Code != otelcodes.Unset {
		t.Errorf("server span status %v, want Unset: the call succeeded", server.Status().Code)
	}

	// Metrics: one result per member, and one duration per member.
	rm := tel.collect(t)
	calls := findMetric(t, rm, tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	wantCalls := map[string]string{"n0": "OK", "n1": "UNAVAILABLE", "n2": "OK"}
	if len(calls.DataPoints) != len(wantCalls) {
		t.Errorf("%d data points of %s, want %d: %v", len(calls.DataPoints), tracing.UpstreamCallsMetric, len(wantCalls), calls.DataPoints)
	}
	for member, code := range wantCalls {
		want := set(tracing.ClusterKey.String(groupName), tracing.MemberKey.String(member), tracing.StatusCodeKey.String(code))
		if v, ok := sumAt(calls, want); !ok || v != 1 {
			t.Errorf("%s{%s} = %d (found %v), want 1", tracing.UpstreamCallsMetric, want.Encoded(attributeEncoder), v, ok)
		}
	}
	durations := findMetric(t, rm, "rpc.client.call.duration").Data.(metricdata.Histogram[float64])
	for _, member := range []string{"n0", "n1", "n2"} {
		var n uint64
		for _, dp := range durations.DataPoints {
			if v, ok := dp.Attributes.Value(tracing.MemberKey); ok && v.AsString() == member {
				if c, _ := dp.Attributes.Value(tracing.ClusterKey); c.AsString() != groupName {
					t.Errorf("rpc.client.call.duration for %s has manifold.cluster %q", member, c.AsString())
				}
				n += dp.Count
			}
		}
		if n != 1 {
			t.Errorf("rpc.client.call.duration has %d points for member %s, want 1", n, member)
		}
	}
}

// With the "first" policy, the branches the policy cancels are counted as
// CANCELLED, not as failures of the call's members.
func TestFanoutFirstPolicy(t *testing.T) {
	t.Parallel()
	tel := newTelemetry(t)
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	g := startGroup(t, tel, 3, func(i int, m *machine) {
		if i > 0 {
			m.version = func(ctx context.Context) (*clusterpb.VersionResponse, error) {
				select {
				case <-release:
				case <-ctx.Done():
				}
				return nil, status.FromContextError(ctx.Err()).Err()
			}
		}
	}, fanout.Config{Policy: fanout.Policy{Mode: fanout.First}})

	if _, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	// The proxy's server span and its three client spans; a member may
	// never see a branch the policy cancelled early.
	spans := tel.waitSpansWhere(t, 4, func(s sdktrace.ReadOnlySpan) bool {
		_, proxy := attr(s, tracing.UpstreamCountKey)
		return proxy || s.SpanKind() == trace.SpanKindClient
	})
	server := proxyServerSpans(spans)
	if len(server) != 1 {
		t.Fatalf("want one proxy server span:\n%s", describe(spans))
	}
	if got := attrString(server[0], tracing.UpstreamFailedKey); got != "0" {
		t.Errorf("manifold.upstream.failed = %s, want 0: cancelled branches are not failures", got)
	}
	if _, ok := attr(server[0], tracing.FailedMembersKey); ok {
		t.Error("server span names failed members, want none")
	}
	calls := findMetric(t, tel.collect(t), tracing.UpstreamCallsMetric).Data.(metricdata.Sum[int64])
	for member, code := range map[string]string{"n0": "OK", "n1": "CANCELLED", "n2": "CANCELLED"} {
		want := set(tracing.ClusterKey.String(groupName), tracing.MemberKey.String(member), tracing.StatusCodeKey.String(code))
		if v, ok := sumAt(calls, want); !ok || v != 1 {
			t.Errorf("%s{%s} = %d (found %v), want 1", tracing.UpstreamCallsMetric, want.Encoded(attributeEncoder), v, ok)
		}
	}
}
