package configtest

import (
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Head is the start of a config file with one listener and one cluster,
// "c", for a test to add routes and filters to.
const Head = "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\n"

// FilterFile checks a filter module end to end through config files: name
// is registered; good (a whole file whose first route's first filter is
// the module) parses and its config builds a filter called name; bad
// fails to parse with every error in want (substrings, with file, line
// and field). It returns good's decoded config, for the caller to compare
// with what it wrote.
func FilterFile(t testing.TB, name, good, bad string, want []string) pipeline.FilterConfig {
	t.Helper()
	if _, ok := pipeline.Lookup(name); !ok {
		t.Fatalf("%q is not registered", name)
	}
	cfg, err := config.Parse("m.yaml", []byte(good), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := cfg.Routes[0].Filters[0].Config
	f, err := got.Build(pipeline.BuildEnv{})
	if err != nil || f.Name() != name {
		t.Fatalf("Build: %v, %v", f, err)
	}
	_, err = config.Parse("m.yaml", []byte(bad), nil)
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	return got
}
