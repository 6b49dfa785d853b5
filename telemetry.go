package manifold

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"

	promclient "github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"google.golang.org/grpc"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/server"
)

// telemetry is the process's OpenTelemetry setup, read from the standard
// environment variables (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_TRACES_EXPORTER,
// OTEL_METRICS_EXPORTER, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES,
// OTEL_PROPAGATORS, …) through otel's autoexport and autoprop packages.
type telemetry struct {
	// metrics serves the Prometheus exposition for the admin /metrics.
	metrics http.Handler
	// instrument installs otelgrpc's stats handlers on the server and the
	// upstreams. They cost CPU on every call (a span, metric records), so
	// they are on only when something uses them: span or metric export
	// asked for in the environment, or an admin listener serving /metrics.
	// Without them trace context still passes through: the proxy forwards
	// traceparent and baggage headers like any other metadata.
	instrument bool
	opts       []tracing.Option
	shutdown   []func(context.Context) error
}

// tracesWanted reports whether the environment asks for span export. The
// OTLP default of autoexport would otherwise send spans to a collector on
// localhost that usually is not there.
func tracesWanted() bool {
	if v := os.Getenv("OTEL_TRACES_EXPORTER"); v != "" {
		return v != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

func metricsExportWanted() bool {
	if v := os.Getenv("OTEL_METRICS_EXPORTER"); v != "" {
		return v != "none"
	}
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || os.Getenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") != ""
}

// setupTelemetry installs the global propagator, tracer provider (when the
// environment asks for traces) and meter provider (always: Prometheus for
// the admin listener, plus OTLP when asked).
func setupTelemetry(ctx context.Context, log *slog.Logger) (*telemetry, error) {
	t := &telemetry{instrument: tracesWanted() || metricsExportWanted()}
	prop := autoprop.NewTextMapPropagator()
	otel.SetTextMapPropagator(prop)
	t.opts = append(t.opts, tracing.WithPropagator(prop))

	res, err := resource.New(ctx,
		resource.WithAttributes(semconv.ServiceName("manifold")),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, err
	}

	if tracesWanted() {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			return nil, err
		}
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
		otel.SetTracerProvider(tp)
		t.opts = append(t.opts, tracing.WithTracerProvider(tp))
		t.shutdown = append(t.shutdown, tp.Shutdown)
		log.Info("exporting traces", slog.String("exporter", os.Getenv("OTEL_TRACES_EXPORTER")))
	}

	reg := promclient.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	promExp, err := prometheus.New(prometheus.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	mopts := []sdkmetric.Option{sdkmetric.WithReader(promExp), sdkmetric.WithResource(res)}
	if metricsExportWanted() {
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, err
		}
		mopts = append(mopts, sdkmetric.WithReader(r))
	}
	mp := sdkmetric.NewMeterProvider(mopts...)
	otel.SetMeterProvider(mp)
	t.opts = append(t.opts, tracing.WithMeterProvider(mp))
	t.shutdown = append(t.shutdown, mp.Shutdown)
	t.metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return t, nil
}

// serverOptions instruments the gRPC server: a span per call, propagation
// in, rpc.server.* metrics.
func (t *telemetry) serverOptions() []server.Option {
	if !t.instrument {
		return nil
	}
	return []server.Option{server.WithGRPCOptions(grpc.StatsHandler(tracing.ServerHandler(t.opts...)))}
}

// dialOptions instruments every upstream connection: a client span per
// upstream call, propagation out, rpc.client.* metrics.
func (t *telemetry) dialOptions() []grpc.DialOption {
	if !t.instrument {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(tracing.ClientHandler(t.opts...))}
}

// serveMetrics turns the stats handlers on because an admin listener
// serves /metrics. Call it before building servers and clusters.
func (t *telemetry) serveMetrics() { t.instrument = true }

// close flushes and stops the exporters.
func (t *telemetry) close(ctx context.Context) error {
	var errs []error
	for _, f := range t.shutdown {
		errs = append(errs, f(ctx))
	}
	return errors.Join(errs...)
}
