package tracing

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel/metric/noop"

	"github.com/manifold-grpc/manifold/pipeline"
)

func init() {
	pipeline.Register(pipeline.Module{Name: "tracing", New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config is the tracing filter's configuration. The zero value is ready to
// use.
//
// The filter built from config uses otel's global tracer and meter
// providers, which the program sets up (an OTLP exporter, a Prometheus
// reader on the admin port). The spans themselves come from the stats
// handlers ([ServerHandler], [ClientHandler]) that the program installs on
// the server and on every cluster; the filter only adds the proxy's
// attributes and metrics.
type Config struct {
	// RequestMetadata lists request metadata keys whose values are
	// recorded on the server span as rpc.request.metadata.<key>, e.g.
	// ["x-tenant", "user-agent"]. Values come from the client's request
	// as it arrived, before any filter changed it. Keys are lowercase;
	// binary keys (ending in -bin) and keys that carry credentials
	// (authorization, proxy-authorization, cookie, set-cookie, x-api-key)
	// are refused.
	RequestMetadata []string `yaml:"request_metadata"`
	// DisableMetrics turns off the filter's own metrics
	// (manifold.upstream.calls, manifold.server.active_calls); the span
	// attributes stay. otelgrpc's rpc.* metrics belong to the stats
	// handlers.
	DisableMetrics bool `yaml:"disable_metrics"`
}

// Validate reports every problem with c, naming the fields.
func (c Config) Validate() error {
	return validateMetadataKeys(c.RequestMetadata)
}

// Build returns the filter.
func (c Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	opts := []Option{WithRequestMetadata(c.RequestMetadata...)}
	if c.DisableMetrics {
		opts = append(opts, WithMeterProvider(noop.NewMeterProvider()))
	}
	f, err := New(opts...) // validates c.RequestMetadata
	if err != nil {
		return nil, err
	}
	return f, nil
}

// secretKeys are request metadata keys never recorded on a span.
var secretKeys = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"cookie":              true,
	"set-cookie":          true,
	"x-api-key":           true,
}

// validateMetadataKeys checks the keys of request_metadata.
func validateMetadataKeys(keys []string) error {
	var errs []error
	seen := make(map[string]bool, len(keys))
	for i, k := range keys {
		field := fmt.Sprintf("request_metadata[%d]", i)
		switch {
		case k == "":
			errs = append(errs, fmt.Errorf("%s: empty key", field))
		case !pipeline.ValidPair(k, ""):
			errs = append(errs, fmt.Errorf("%s: %q is not a metadata key: lowercase letters, digits and -_. only", field, k))
		case strings.HasSuffix(k, "-bin"):
			errs = append(errs, fmt.Errorf("%s: %q is a binary key; only text values can be span attributes", field, k))
		case secretKeys[k]:
			errs = append(errs, fmt.Errorf("%s: %q carries credentials and is never recorded", field, k))
		case seen[k]:
			errs = append(errs, fmt.Errorf("%s: %q is listed twice", field, k))
		}
		seen[k] = true
	}
	if len(errs) == 0 {
		return nil
	}
	return errors.Join(errs...)
}

var _ pipeline.FilterConfig = (*Config)(nil)
