package tracing_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// Wire the three pieces into a proxy, make one call through it, and print
// the proxy's spans and its upstream count.
func Example() {
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	opts := []tracing.Option{tracing.WithTracerProvider(tp), tracing.WithMeterProvider(mp)}

	// A backend.
	backendLis := must(net.Listen("tcp", "127.0.0.1:0"))
	backend := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(backend, &testbackend.Service{})
	go func() { _ = backend.Serve(backendLis) }()
	defer backend.Stop()

	// The proxy: a client span per upstream call, the filter, a server span
	// per call.
	cl := must(cluster.New(cluster.Config{
		Name:        "backend",
		Target:      "passthrough:///" + backendLis.Addr().String(),
		DialOptions: []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(opts...))},
	}))
	chain := must(pipeline.Build([]pipeline.Filter{must(tracing.New(opts...))}, route.New(cl)))
	proxy := must(server.New(chain, server.WithCloser(cl),
		server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(opts...)))))
	lis := must(net.Listen("tcp", "127.0.0.1:0"))
	go func() { _ = proxy.Serve(lis) }()

	// One call.
	conn := must(grpc.NewClient("passthrough:///"+lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials())))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := testgrpc.NewTestServiceClient(conn).UnaryCall(ctx, &testgrpc.SimpleRequest{})
	fmt.Println("call:", err)
	_ = conn.Close()
	_ = proxy.Shutdown(ctx)

	// The proxy's two spans, once both have ended.
	for len(spans.Ended()) < 2 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	ended := spans.Ended()
	var serverID string
	for _, s := range ended {
		if s.SpanKind() == trace.SpanKindServer {
			serverID = s.SpanContext().SpanID().String()
		}
	}
	var lines []string
	for _, s := range ended {
		var attrs []string
		for _, kv := range s.Attributes() {
			if strings.HasPrefix(string(kv.Key), "manifold.") || kv.Key == tracing.StatusCodeKey {
				attrs = append(attrs, string(kv.Key)+"="+kv.Value.String())
			}
		}
		slices.Sort(attrs)
		line := fmt.Sprintf("%s span %s %s", s.SpanKind(), s.Name(), strings.Join(attrs, " "))
		if s.Parent().SpanID().String() == serverID {
			line += " (child of the server span)"
		}
		lines = append(lines, line)
	}
	slices.Sort(lines)
	for _, l := range lines {
		fmt.Println(l)
	}

	var rm metricdata.ResourceMetrics
	_ = reader.Collect(ctx, &rm)
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != tracing.UpstreamCallsMetric {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				fmt.Printf("%s{%s} %d\n", m.Name, dp.Attributes.Encoded(attribute.DefaultEncoder()), dp.Value)
			}
		}
	}
	_ = tp.Shutdown(ctx)
	_ = mp.Shutdown(ctx)
	// Output:
	// call: <nil>
	// client span grpc.testing.TestService/UnaryCall manifold.cluster=backend rpc.response.status_code=OK (child of the server span)
	// server span grpc.testing.TestService/UnaryCall manifold.cluster=backend manifold.upstream.count=1 manifold.upstream.failed=0 rpc.response.status_code=OK
	// manifold.upstream.calls{manifold.cluster=backend,rpc.response.status_code=OK} 1
}

// must panics on an error, to keep the example short.
func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
