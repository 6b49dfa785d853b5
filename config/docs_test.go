package config_test

import (
	"encoding"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/manifold-grpc/manifold/config"
)

const configDoc = "../docs/configuration.md"

// TestConfigurationDoc keeps docs/configuration.md in step with the Config
// structs: every field a config file can set must appear in the doc as its
// full yaml path in backticks (`listeners[].tls.cert_file`), and every such
// path the doc names must be a real field. Filters' own fields are
// documented in docs/filters.md and are not walked.
func TestConfigurationDoc(t *testing.T) {
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)

	var want []string
	walkYAML(reflect.TypeFor[config.Config](), "", &want)
	if len(want) < 40 {
		t.Fatalf("walked only %d paths; the walker is broken: %v", len(want), want)
	}
	fields := map[string]bool{}
	for _, p := range want {
		fields[p] = true
		if !strings.Contains(doc, "`"+p+"`") {
			t.Errorf("%s does not document `%s`", configDoc, p)
		}
	}

	// The other way round: a path in backticks that starts like a config
	// path must exist, so that a renamed or removed field cannot linger in
	// the doc. Indexes ([2]) read as [], and paths inside a filter's config
	// (filters[0].auth.…) belong to docs/filters.md.
	top := map[string]bool{}
	for _, p := range want {
		top[strings.FieldsFunc(p, func(r rune) bool { return r == '.' || r == '[' })[0]] = true
	}
	index := regexp.MustCompile(`\[\d+\]`)
	reported := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z_]+(?:\\[\\d*\\]|\\.[a-z_]+)+)`").FindAllStringSubmatch(doc, -1) {
		p := index.ReplaceAllString(m[1], "[]")
		first := strings.FieldsFunc(p, func(r rune) bool { return r == '.' || r == '[' })[0]
		if !top[first] || fields[strings.TrimSuffix(p, "[]")] || underFilter(p) || reported[m[1]] {
			continue
		}
		reported[m[1]] = true
		t.Errorf("%s names `%s`, which is not a config field", configDoc, m[1])
	}
}

// underFilter reports whether p leads into a filter's own config.
func underFilter(p string) bool {
	return strings.HasPrefix(p, "filters[].") || strings.Contains(p, ".filters[].")
}

var (
	filterType      = reflect.TypeFor[config.Filter]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
)

// walkYAML appends to out the yaml path of every field of struct t, as the
// config decoder reads them: slices add "[]", pointers are followed, and
// nested structs are walked, except filters and types that decode
// themselves from text or yaml (a policy, a method kind), which are leaves.
func walkYAML(t reflect.Type, prefix string, out *[]string) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if strings.Contains(opts, "inline") && ft.Kind() == reflect.Struct {
			walkYAML(ft, prefix, out)
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		*out = append(*out, path)
		walkType(ft, path, out)
	}
	sort.Strings(*out)
}

// walkType descends into the fields of a field's type t at path.
func walkType(t reflect.Type, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if isLeaf(t) {
		return
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		walkType(t.Elem(), path+"[]", out)
	case reflect.Struct:
		walkYAML(t, path, out)
	}
}

// isLeaf reports whether values of t are decoded whole, not field by field.
func isLeaf(t reflect.Type) bool {
	if t == filterType {
		return true
	}
	pt := reflect.PointerTo(t)
	return t.Implements(textUnmarshaler) || pt.Implements(textUnmarshaler) ||
		t.Implements(yamlUnmarshaler) || pt.Implements(yamlUnmarshaler)
}

// TestWalkYAML checks the walker itself on the shapes it must handle.
func TestWalkYAML(t *testing.T) {
	var got []string
	walkYAML(reflect.TypeFor[config.Config](), "", &got)
	has := map[string]bool{}
	for _, p := range got {
		has[p] = true
	}
	for _, p := range []string{
		"listeners", "listeners[].tls.client_ca_file", "admin.address", "drain_timeout",
		"clusters[].addresses", "fanout[].members[].tls.server_name",
		"fanout[].kinds[].match", "fanout[].kinds[].kind", "fanout[].policy",
		"fanout[].layout.status_field", "routes[].match.metadata", "routes[].filters", "filters",
	} {
		if !has[p] {
			t.Errorf("walk misses %s", p)
		}
	}
	for _, p := range []string{"source", "filters[].name", "routes[].filters[].config", "fanout[].policy.mode"} {
		if has[p] {
			t.Errorf("walk has %s, which a config file cannot set", p)
		}
	}
}
