package logging_test

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// TestTraceIDs checks that the record carries the trace and span ids of the
// server span that otelgrpc's stats handler starts for the call, continuing
// the client's W3C trace.
func TestTraceIDs(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	c := newCapture(nil)
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters: []pipeline.Filter{newFilter(t, logging.Config{}, c)},
		ServerOptions: []server.Option{server.WithGRPCOptions(grpc.StatsHandler(otelgrpc.NewServerHandler(
			otelgrpc.WithTracerProvider(tp),
			otelgrpc.WithPropagators(propagation.TraceContext{}),
		)))},
	})

	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "traceparent", "00-"+traceID+"-"+parentID+"-01")
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	r := c.wait(t, 1)[0]

	var spans []sdktrace.ReadOnlySpan
	for deadline := time.Now().Add(5 * time.Second); len(spans) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		spans = rec.Ended()
	}
	if len(spans) != 1 {
		t.Fatalf("got %d ended spans, want the server span", len(spans))
	}
	sc := spans[0].SpanContext()
	if got := r.str(t, logging.KeyTraceID); got != traceID || sc.TraceID().String() != traceID {
		t.Errorf("trace_id %q, span's %s, want %s", got, sc.TraceID(), traceID)
	}
	if got := r.str(t, logging.KeySpanID); got != sc.SpanID().String() {
		t.Errorf("span_id %q, want the server span's %s", got, sc.SpanID())
	}
	if got := spans[0].Parent().SpanID().String(); got != parentID {
		t.Errorf("server span's parent %s, want the client's %s", got, parentID)
	}
}
