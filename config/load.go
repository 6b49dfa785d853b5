package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads, decodes and validates the config file at path. The error, if
// any, joins every problem found, each an *[Error] naming the file, line,
// column and field path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, b, os.LookupEnv)
}

// Parse decodes and validates a config file's contents; name is used in
// errors, lookupEnv resolves ${VAR} references.
func Parse(name string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && err != io.EOF {
		return nil, &Error{File: name, Msg: trimYAMLLine(err.Error()), Line: yamlErrLine(err, data)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err != io.EOF {
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return nil, &Error{File: name, Line: max(line, 1), Msg: "more than one YAML document; a config file holds one"}
	}
	d := &decoder{file: name, nodes: map[string]*yaml.Node{}, budget: aliasBudget(countNodes(&root))}
	cfg := &Config{}
	if len(root.Content) == 0 {
		d.errorf(nil, "", "the file is empty")
		return nil, errors.Join(d.errs...)
	}
	d.expandEnv(root.Content[0], "", lookupEnv)
	d.decode(root.Content[0], reflect.ValueOf(cfg).Elem(), "")
	// Validate even after decoding errors, so that one run reports every
	// problem; fields that failed to decode are zero and may add an error
	// of their own.
	d.validate(cfg)
	if len(d.errs) > 0 {
		return nil, errors.Join(d.errs...)
	}
	cfg.Source = redacted(data)
	return cfg, nil
}

var lineRE = regexp.MustCompile(`line (\d+)`)

var anchorRE = regexp.MustCompile(`unknown anchor '([^']*)' referenced`)

// yamlErrLine finds the line of a yaml syntax error. yaml.v3 names it in
// the message, except on the first line ("line 0" or none at all) and for
// unknown anchors, whose first use in data is the place to look.
func yamlErrLine(err error, data []byte) int {
	if m := anchorRE.FindStringSubmatch(err.Error()); m != nil {
		if i := bytes.Index(data, []byte("*"+m[1])); i >= 0 {
			return 1 + bytes.Count(data[:i], []byte("\n"))
		}
	}
	m := lineRE.FindStringSubmatch(err.Error())
	if m == nil {
		return 1
	}
	var n int
	fmt.Sscan(m[1], &n)
	return max(n, 1)
}

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// expandEnv replaces ${VAR} and ${VAR:-default} in every scalar value;
// path is the node's field path, for errors.
func (d *decoder) expandEnv(n *yaml.Node, path string, lookup func(string) (string, bool)) {
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		// $${ is a literal ${.
		const escaped = "\x00manifold-dollar\x00"
		value := strings.ReplaceAll(n.Value, "$${", escaped)
		value = envRE.ReplaceAllStringFunc(value, func(ref string) string {
			m := envRE.FindStringSubmatch(ref)
			if strings.Contains(m[3], "${") {
				d.errorf(n, path, "malformed environment reference in %q: defaults cannot hold another ${…}", n.Value)
				return ""
			}
			if v, ok := lookup(m[1]); ok {
				return v
			}
			if m[2] != "" {
				return m[3]
			}
			d.errorf(n, path, "environment variable %s is not set and has no default (write ${%s:-default})", m[1], m[1])
			return ""
		})
		if rest := envRE.ReplaceAllString(strings.ReplaceAll(n.Value, "$${", ""), ""); strings.Contains(rest, "${") {
			d.errorf(n, path, "malformed environment reference in %q: write ${NAME} or ${NAME:-default} (defaults cannot nest), or $${ for a literal ${", n.Value)
		}
		n.Value = strings.ReplaceAll(value, escaped, "${")
		if n.Style == 0 {
			// A plain scalar is read as what its expanded text looks like
			// (a number, a boolean), as if written in the file; quoted ones
			// stay strings.
			n.Tag = ""
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			d.expandEnv(n.Content[i+1], join(path, n.Content[i].Value), lookup)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			d.expandEnv(c, fmt.Sprintf("%s[%d]", path, i), lookup)
		}
	}
}

// locate turns a validation error into a located one: msg may start with
// a field path relative to base ("providers[0].issuer: required").
func (d *decoder) locate(base, msg string) {
	for _, line := range strings.Split(msg, "\n") {
		if line == "" {
			continue
		}
		path, rest := base, line
		if rel, r, ok := strings.Cut(line, ": "); ok && looksLikePath(rel) {
			path, rest = join(base, rel), r
		}
		d.errorf(d.nearest(path), path, "%s", rest)
	}
}

// nearest returns the node of path or of its closest ancestor.
func (d *decoder) nearest(path string) *yaml.Node {
	for p := path; ; {
		if n, ok := d.nodes[p]; ok {
			return n
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return d.nodes[""]
		}
		p = p[:i]
	}
}

var pathRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*(\[\d+\])*(\.[a-z_][a-z0-9_]*(\[\d+\])*)*$`)

func looksLikePath(s string) bool { return pathRE.MatchString(s) }

func sortStrings(s []string) { sort.Strings(s) }
