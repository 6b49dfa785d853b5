// Package stamp is a user's own filter, registered by name so that config
// files can use it next to the built-ins: it stamps every response with a
// header naming the proxy instance.
package stamp

import (
	"context"
	"errors"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
)

func init() {
	pipeline.Register(pipeline.Module{Name: "example.stamp", New: func() pipeline.FilterConfig { return new(Config) }})
}

// Config configures the stamp filter.
type Config struct {
	// Header is the response header to set. Default x-proxied-by.
	Header string `yaml:"header"`
	// Instance is the value, typically ${HOSTNAME}. Required.
	Instance string `yaml:"instance"`
}

// Validate reports a missing instance.
func (c *Config) Validate() error {
	if c.Instance == "" {
		return errors.New("instance: required")
	}
	return nil
}

// Build makes the filter.
func (c *Config) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	header := c.Header
	if header == "" {
		header = "x-proxied-by"
	}
	return &Filter{header: header, instance: c.Instance}, nil
}

// Filter sets a response header on every call.
type Filter struct {
	header, instance string
}

// Name returns "example.stamp".
func (*Filter) Name() string { return "example.stamp" }

// OnResponseHeaders adds the stamp.
func (f *Filter) OnResponseHeaders(_ context.Context, _ *pipeline.Call, md metadata.MD) error {
	md.Set(f.header, f.instance)
	return nil
}

var (
	_ pipeline.FilterConfig        = (*Config)(nil)
	_ pipeline.ResponseHeadersHook = (*Filter)(nil)
)
