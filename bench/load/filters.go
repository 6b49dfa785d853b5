package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// filtersConfig is the config of manifold-config (no filters) and
// manifold-filters: the one-to-one route of quick mode in config mode, for
// manifold-filters with the three header-only built-in filters
// (filterConfigs, or those -filters names), outermost first as
// examples/config/one-to-one.yaml orders them. The access log goes to a
// file of its own, buffered (logging's output), as a production access log
// would; tracing records its metrics into the SDK meter provider; spans
// need an exporter in the environment (none here) and otelgrpc's stats
// handlers, which are telemetry of the server, not a filter.
const filtersConfig = `listeners:
  - address: 127.0.0.1:0
    max_concurrent_streams: 0
drain_timeout: 1s
log: {format: json}
clusters:
  - name: backend
    target: %s%s
filters: %s
routes:
  - name: all
    route: backend
`

// filterNames are the filters manifold-filters can have (-filters), in
// the order of its chain.
var filterNames = []string{"logging", "tracing", "auth"}

// filterConfigs are the config of each of filterNames, with {access_log}
// and {secret} for the paths of the access log and the HMAC secret.
var filterConfigs = map[string]string{
	"logging": `
  - logging:
      output: {access_log}`,
	"tracing": `
  - tracing: {}`,
	"auth": `
  - auth:
      providers:
        - name: bench
          issuer: manifold-bench
          audiences: [bench]
          algorithms: [HS256]
          hmac_secret_file: {secret}`,
}

// chainLabel names manifold-filters' chain in the report: "auth+logging+tracing".
func chainLabel(filters []string) string {
	return strings.Join(slices.Sorted(slices.Values(filters)), "+")
}

// writeFiltersConfig writes the config of manifold-filters (with, its
// HMAC secret and access log path) or manifold-config into the build
// directory, and makes the token the client sends.
func (b *bench) writeFiltersConfig(upstream string, with bool) (string, error) {
	secret := []byte("manifold-bench-hmac-secret-0123456789abcdef")
	secretFile := filepath.Join(b.bin, "hmac.secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		return "", err
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "manifold-bench", "aud": "bench", "sub": "load",
		"exp": time.Now().Add(24 * time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		return "", err
	}
	b.token = token
	kinds := ""
	if !b.s.NoKinds {
		kinds = "\n    protoset: " + filepath.Join(b.bin, protosetFile)
	}
	path, chain := filepath.Join(b.bin, "config.yaml"), "[]"
	if with {
		path = filepath.Join(b.bin, "filters.yaml")
		paths := strings.NewReplacer("{access_log}", filepath.Join(b.bin, "access.log"), "{secret}", secretFile)
		chain = ""
		for _, name := range filterNames {
			if slices.Contains(b.s.Filters, name) {
				chain += paths.Replace(filterConfigs[name])
			}
		}
	}
	cfg := fmt.Sprintf(filtersConfig, upstream, kinds, chain)
	return path, os.WriteFile(path, []byte(cfg), 0o600)
}
