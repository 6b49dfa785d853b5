package tracing_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/baggage"
	"go.opentelemetry.io/otel/metric/noop"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
	"github.com/manifold-grpc/manifold/server"
)

// telemetry records every span and metric of one test in memory.
type telemetry struct {
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
}

func newTelemetry(t testing.TB) *telemetry {
	t.Helper()
	tel := &telemetry{spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader()}
	tel.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tel.spans))
	tel.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tel.reader))
	t.Cleanup(func() {
		_ = tel.tp.Shutdown(context.Background())
		_ = tel.mp.Shutdown(context.Background())
	})
	return tel
}

// options configure the proxy's handlers and filter.
func (tel *telemetry) options() []tracing.Option {
	return []tracing.Option{tracing.WithTracerProvider(tel.tp), tracing.WithMeterProvider(tel.mp)}
}

// filter returns a tracing filter recording into tel.
func (tel *telemetry) filter(t testing.TB, opts ...tracing.Option) *tracing.Filter {
	t.Helper()
	f, err := tracing.New(append(tel.options(), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// clientHandler instruments a test client: spans into tel, metrics nowhere
// (only the proxy's metrics are under test).
func (tel *telemetry) clientHandler() stats.Handler {
	return otelgrpc.NewClientHandler(
		otelgrpc.WithTracerProvider(tel.tp),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithPropagators(tracing.DefaultPropagator()))
}

// backendHandler instruments a backend with plain otelgrpc, as a service
// behind the proxy would be.
func (tel *telemetry) backendHandler() stats.Handler {
	return otelgrpc.NewServerHandler(
		otelgrpc.WithTracerProvider(tel.tp),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider()),
		otelgrpc.WithPropagators(tracing.DefaultPropagator()))
}

// waitSpans waits until n spans have ended and returns them. Server spans
// end after the status has gone out, a moment after the client returns.
func (tel *telemetry) waitSpans(t testing.TB, n int) []sdktrace.ReadOnlySpan {
	t.Helper()
	tel.waitSpansWhere(t, n, func(sdktrace.ReadOnlySpan) bool { return true })
	time.Sleep(20 * time.Millisecond) // let any unexpected extra span show up
	spans := tel.spans.Ended()
	if len(spans) != n {
		t.Fatalf("%d spans ended, want %d:\n%s", len(spans), n, describe(spans))
	}
	return spans
}

// waitSpansWhere waits until n ended spans satisfy match and returns all
// the ended spans.
func (tel *telemetry) waitSpansWhere(t testing.TB, n int, match func(sdktrace.ReadOnlySpan) bool) []sdktrace.ReadOnlySpan {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ended := tel.spans.Ended()
		matched := 0
		for _, s := range ended {
			if match(s) {
				matched++
			}
		}
		if matched >= n {
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching spans ended after 5s, want %d:\n%s", matched, n, describe(ended))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// collect reads the metrics recorded so far.
func (tel *telemetry) collect(t testing.TB) metricdata.ResourceMetrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tel.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	return rm
}

func describe(spans []sdktrace.ReadOnlySpan) string {
	var s string
	for _, sp := range spans {
		s += fmt.Sprintf("  %v %s span=%s parent=%s %v\n", sp.SpanKind(), sp.Name(), sp.SpanContext().SpanID(), sp.Parent().SpanID(), sp.Attributes())
	}
	return s
}

// attr returns the value of key on span.
func attr(span sdktrace.ReadOnlySpan, key attribute.Key) (attribute.Value, bool) {
	for _, kv := range span.Attributes() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return attribute.Value{}, false
}

// attrString returns key's value on span as a string, "" when absent.
func attrString(span sdktrace.ReadOnlySpan, key attribute.Key) string {
	v, ok := attr(span, key)
	if !ok {
		return ""
	}
	return v.String()
}

// proxyServerSpans are the server spans the proxy's handler started: the
// ones the filter labelled.
func proxyServerSpans(spans []sdktrace.ReadOnlySpan) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if _, ok := attr(s, tracing.UpstreamCountKey); ok && s.SpanKind() == trace.SpanKindServer {
			out = append(out, s)
		}
	}
	return out
}

// childrenOf returns the spans whose parent is p, of the given kind.
func childrenOf(spans []sdktrace.ReadOnlySpan, p sdktrace.ReadOnlySpan, kind trace.SpanKind) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.SpanKind() == kind && s.Parent().SpanID() == p.SpanContext().SpanID() && s.Parent().TraceID() == p.SpanContext().TraceID() {
			out = append(out, s)
		}
	}
	return out
}

// seen is what a backend saw of one call.
type seen struct {
	traceparent string
	baggageHdr  string
	spanContext trace.SpanContext
	baggage     baggage.Baggage
}

// recorder keeps what a backend saw, call after call.
type recorder struct {
	mu    sync.Mutex
	calls []seen
}

func (r *recorder) record(ctx context.Context) {
	md, _ := metadata.FromIncomingContext(ctx)
	s := seen{spanContext: trace.SpanContextFromContext(ctx), baggage: baggage.FromContext(ctx)}
	if v := md.Get("traceparent"); len(v) > 0 {
		s.traceparent = v[0]
	}
	if v := md.Get("baggage"); len(v) > 0 {
		s.baggageHdr = v[0]
	}
	r.mu.Lock()
	r.calls = append(r.calls, s)
	r.mu.Unlock()
}

func (r *recorder) last(t testing.TB) seen {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		t.Fatal("the backend saw no call")
	}
	return r.calls[len(r.calls)-1]
}

// oneToOne is the route name of startOneToOne's proxy.
const oneToOne = "echo"

// startOneToOne starts a proxy in front of backendAddr, wired as package
// doc says: the server handler, the client handler on the cluster, the
// filter first in the chain of route "echo" (so the route is known when
// the call starts), then extra.
func startOneToOne(t testing.TB, tel *telemetry, backendAddr string, f pipeline.Filter, extra []pipeline.Filter, dial ...grpc.DialOption) *proxytest.Env {
	t.Helper()
	return proxytest.Start(t, backendAddr, proxytest.Config{
		Cluster: cluster.Config{DialOptions: []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(tel.options()...))}},
		ServerOptions: []server.Option{
			server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(tel.options()...))),
		},
		DialOptions: dial,
		Terminal: func(c *cluster.Cluster) pipeline.Handler {
			chain, err := pipeline.Build(append([]pipeline.Filter{f}, extra...), route.New(c))
			if err != nil {
				t.Fatal(err)
			}
			r, err := router.New(router.Route{Name: oneToOne, Match: router.Match{Service: "grpc.testing.TestService"}, Handler: chain})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})
}

// kinds tells the Machine service's methods apart, as a config file would.
var kinds = methodkind.Patterns{
	{Match: "/manifold.cluster.v1.Machine/Version", Kind: methodkind.Unary},
	{Match: "/manifold.cluster.v1.Machine/Logs", Kind: methodkind.ServerStreaming},
}

// machine is one fan-out member.
type machine struct {
	clusterpb.UnimplementedMachineServer
	name    string
	seen    *recorder
	version func(ctx context.Context) (*clusterpb.VersionResponse, error)
}

func (m *machine) Version(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
	m.seen.record(ctx)
	if m.version != nil {
		return m.version(ctx)
	}
	return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1", Node: m.name}}}, nil
}

// group is a fan-out proxy in front of its members.
type group struct {
	client   clusterpb.MachineClient
	machines []*machine
}

// groupName is the fan-out group's name: the cluster of every branch.
const groupName = "machines"

// startGroup starts n instrumented members, named n0, n1, …, changed by
// mk, and a fan-out proxy over them with the tracing filter.
func startGroup(t testing.TB, tel *telemetry, n int, mk func(i int, m *machine), cfg fanout.Config) *group {
	t.Helper()
	g := &group{}
	var members []fanout.Member
	var closers []server.Option
	for i := range n {
		m := &machine{name: fmt.Sprintf("n%d", i), seen: &recorder{}}
		if mk != nil {
			mk(i, m)
		}
		g.machines = append(g.machines, m)
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer(grpc.StatsHandler(tel.backendHandler()))
		clusterpb.RegisterMachineServer(srv, m)
		go func() { _ = srv.Serve(lis) }()
		t.Cleanup(srv.Stop)

		cl, err := cluster.New(cluster.Config{
			Name:        m.name,
			Target:      "passthrough:///" + lis.Addr().String(),
			DialOptions: []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(tel.options()...))},
		})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, fanout.Member{Name: m.name, Conn: cl.Conn()})
		closers = append(closers, server.WithCloser(cl))
	}
	cfg.Name = groupName
	cfg.Kinds = kinds
	term, err := fanout.New(members, cfg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pipeline.Build([]pipeline.Filter{tel.filter(t)}, term)
	if err != nil {
		t.Fatal(err)
	}
	opts := append(closers, server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(tel.options()...))))
	proxyAddr := proxytest.Serve(t, chain, opts...)
	g.client = clusterpb.NewMachineClient(proxytest.Dial(t, proxyAddr))
	return g
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// findMetric returns the metric named name.
func findMetric(t testing.TB, rm metricdata.ResourceMetrics, name string) metricdata.Metrics {
	t.Helper()
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name == name {
				return m
			}
		}
	}
	var names []string
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	t.Fatalf("no metric %q; have %v", name, names)
	return metricdata.Metrics{}
}

// set is shorthand for an attribute set.
func set(kv ...attribute.KeyValue) attribute.Set { return attribute.NewSet(kv...) }

// attributeKey converts a name to a key.
func attributeKey(name string) attribute.Key { return attribute.Key(name) }

// codeNameOf is the canonical name of c, e.g. "NOT_FOUND".
func codeNameOf(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK" // not "O_K"
	case codes.Canceled:
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(unicode.ToUpper(r))
	}
	return b.String()
}

// attributeEncoder prints attribute sets in failure messages.
var attributeEncoder = attribute.DefaultEncoder()

// sumAt returns the value of the sum's data point with exactly the
// attributes want.
func sumAt(s metricdata.Sum[int64], want attribute.Set) (int64, bool) {
	for _, dp := range s.DataPoints {
		if dp.Attributes.Equals(&want) {
			return dp.Value, true
		}
	}
	return 0, false
}
