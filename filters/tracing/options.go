package tracing

import (
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// Option configures [New], [ServerHandler] and [ClientHandler]. Pass the
// same options to all three so that spans, metrics and propagation agree.
type Option func(*options)

type options struct {
	tracerProvider  trace.TracerProvider
	meterProvider   metric.MeterProvider
	propagator      propagation.TextMapPropagator
	requestMetadata []string
	// cacheSize bounds the filter's route states and the series of a
	// meter provider's first filter; tests shrink it to reach the bound.
	cacheSize int
}

// newOptions applies opts over the defaults. The providers default to the
// otel globals, which delegate to whatever the program sets later with
// otel.SetTracerProvider and otel.SetMeterProvider.
func newOptions(opts []Option) options {
	o := options{
		tracerProvider: otel.GetTracerProvider(),
		meterProvider:  otel.GetMeterProvider(),
		propagator:     DefaultPropagator(),
		cacheSize:      defaultCacheSize,
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// DefaultPropagator is the propagator used unless [WithPropagator] says
// otherwise: W3C trace context and W3C baggage. It is not otel's global
// propagator, which propagates nothing until a program sets it: a proxy
// that silently dropped its clients' trace context would cut every trace
// in two.
func DefaultPropagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}

// WithTracerProvider sets where the stats handlers' spans go. Default:
// otel's global provider. [New] does not use it: the filter adds attributes
// to the server span that [ServerHandler] started.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp != nil {
			o.tracerProvider = tp
		}
	}
}

// WithMeterProvider sets where the metrics go: otelgrpc's rpc.* metrics
// from the stats handlers and the filter's manifold.* metrics. Default:
// otel's global provider.
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(o *options) {
		if mp != nil {
			o.meterProvider = mp
		}
	}
}

// WithPropagator sets how trace context and baggage are read from the
// client's request metadata ([ServerHandler]) and written into every
// upstream call's metadata ([ClientHandler]). Default:
// [DefaultPropagator]. [New] does not use it.
func WithPropagator(p propagation.TextMapPropagator) Option {
	return func(o *options) {
		if p != nil {
			o.propagator = p
		}
	}
}

// WithRequestMetadata records the values of these request metadata keys
// on the server span, as rpc.request.metadata.<key> (a string slice). Keys
// must be lowercase; binary keys (-bin) and keys that carry credentials
// (authorization, cookie, …) are refused. Only [New] uses it.
func WithRequestMetadata(keys ...string) Option {
	return func(o *options) {
		o.requestMetadata = append(o.requestMetadata, keys...)
	}
}

// withCacheSize bounds the filter's route states to n entries (0: none
// kept, each built per call) and, when the filter is the first on its
// meter provider, the provider's manifold.upstream.calls series (past it,
// calls are counted in the overflow series). It is unexported: tests use
// it to reach the bounds with a few calls.
func withCacheSize(n int) Option {
	return func(o *options) {
		o.cacheSize = max(n, 0)
	}
}
