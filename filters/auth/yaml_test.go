package auth_test

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/manifold-grpc/manifold/filters/auth"
)

// TestDocYAML decodes the YAML example of the package documentation, with
// unknown fields refused: the yaml tags, durations and actions match the
// documented config, and the example is valid.
func TestDocYAML(t *testing.T) {
	t.Parallel()
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(src), "In YAML:\n//\n")
	if !ok {
		t.Fatal("doc.go has no YAML example")
	}
	var doc strings.Builder
	for _, line := range strings.Split(block, "\n") {
		code, ok := strings.CutPrefix(line, "//\t")
		if !ok {
			break
		}
		doc.WriteString(code + "\n")
	}

	var cfg auth.Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(doc.String())))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatalf("%v\n%s", err, doc.String())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := cfg.Providers[0].Leeway; got != 30*time.Second {
		t.Errorf("leeway %v, want 30s", got)
	}
	if got := cfg.Providers[0].RefreshInterval; got != 5*time.Minute {
		t.Errorf("refresh_interval %v, want 5m", got)
	}
	if got := cfg.Rules[0].Action; got != auth.Public {
		t.Errorf("rules[0].action %q, want public", got)
	}
	if got := cfg.Rules[1].Claims["scope"]; got != "orders.admin" {
		t.Errorf("rules[1].claims.scope %q", got)
	}
	if got := cfg.ForwardClaims["sub"]; got != "x-jwt-sub" {
		t.Errorf("forward_claims.sub %q", got)
	}
	if got := cfg.CacheSize; got != 5000 {
		t.Errorf("cache_size %d, want 5000", got)
	}
}
