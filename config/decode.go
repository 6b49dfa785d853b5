package config

import (
	"encoding"
	"errors"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Error is one problem in a config file, located by line, column and field
// path.
type Error struct {
	File         string
	Line, Column int
	// Path is the field path, like routes[2].filters[0].auth.providers[0].issuer.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	loc := e.File
	if e.Line > 0 {
		loc = fmt.Sprintf("%s:%d:%d", e.File, e.Line, e.Column)
	}
	if e.Path == "" {
		return loc + ": " + e.Msg
	}
	return loc + ": " + e.Path + ": " + e.Msg
}

// decoder decodes yaml nodes into Go values strictly, remembering the node
// of every path so that later validation errors can be located.
type decoder struct {
	file  string
	errs  []error
	nodes map[string]*yaml.Node
	// budget is how many more nodes decode may visit. Aliases are decoded
	// again at every use, so nested aliases can make a small file expand
	// exponentially ("billion laughs"); the budget stops that with one
	// error instead of a hang.
	budget    int
	overspent bool
}

// aliasBudget is how many nodes a document with n nodes may expand to
// through aliases: generous for any real config, tiny next to an attack.
func aliasBudget(n int) int { return 10_000 + 64*n }

// countNodes counts n's nodes without following aliases.
func countNodes(n *yaml.Node) int {
	c := 1
	for _, k := range n.Content {
		c += countNodes(k)
	}
	return c
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	e := &Error{File: d.file, Path: path, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line, e.Column = n.Line, n.Column
	}
	d.errs = append(d.errs, e)
}

var (
	filterType      = reflect.TypeFor[Filter]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
	yamlUnmarshaler = reflect.TypeFor[yaml.Unmarshaler]()
)

// decode fills v (addressable) from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if d.budget--; d.budget < 0 {
		if !d.overspent {
			d.overspent = true
			d.errorf(n, path, "aliases expand to too many values; write the values out or nest fewer aliases")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes[path] = n
	if v.Type() == filterType {
		d.filter(n, v.Addr().Interface().(*Filter), path)
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		pt := v.Addr().Type()
		if pt.Implements(yamlUnmarshaler) || pt.Implements(textUnmarshaler) {
			d.leaf(n, v, path)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping of fields, got %s", kindName(n))
			return
		}
		fields := yamlFields(v.Type())
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			key, val := n.Content[i], n.Content[i+1]
			sub := join(path, key.Value)
			if seen[key.Value] {
				d.errorf(key, sub, "set twice")
				continue
			}
			seen[key.Value] = true
			idx, ok := fields[key.Value]
			if !ok {
				d.errorf(key, sub, "unknown field (known: %s)", knownList(fields))
				continue
			}
			d.decode(val, v.FieldByIndex(idx), sub)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "want a list, got %s", kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, el := range n.Content {
			d.decode(el, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "want a mapping, got %s", kindName(n))
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			if key := n.Content[i].Value; seen[key] {
				d.errorf(n.Content[i], join(path, key), "set twice")
				continue
			}
			seen[n.Content[i].Value] = true
			k := reflect.New(v.Type().Key()).Elem()
			d.leaf(n.Content[i], k, path)
			e := reflect.New(v.Type().Elem()).Elem()
			d.decode(n.Content[i+1], e, join(path, n.Content[i].Value))
			m.SetMapIndex(k, e)
		}
		v.Set(m)
	case reflect.Interface:
		d.errorf(n, path, "cannot be set in a config file")
	default:
		d.leaf(n, v, path)
	}
}

// leaf decodes a scalar (or a type with its own decoding) with yaml.v3.
func (d *decoder) leaf(n *yaml.Node, v reflect.Value, path string) {
	if err := n.Decode(v.Addr().Interface()); err != nil {
		var te *yaml.TypeError
		msg := err.Error()
		if errors.As(err, &te) && len(te.Errors) > 0 {
			msg = strings.Join(te.Errors, "; ")
		}
		d.errorf(n, path, "%s", trimYAMLLine(msg))
	}
}

// trimYAMLLine drops yaml.v3's own "yaml: " and "line N: " prefixes; the
// error is located already.
func trimYAMLLine(msg string) string {
	msg = strings.TrimPrefix(msg, "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		if i := strings.Index(msg, ": "); i > 0 {
			return msg[i+2:]
		}
	}
	return msg
}

// yamlFields maps the yaml names of t's fields to their indexes, following
// embedded structs marked ",inline".
func yamlFields(t reflect.Type) map[string][]int {
	out := map[string][]int{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct {
			for k, idx := range yamlFields(f.Type) {
				out[k] = append([]int{i}, idx...)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out[name] = []int{i}
	}
	return out
}

func knownList(fields map[string][]int) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	sortStrings(names)
	return strings.Join(names, ", ")
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// filter decodes "- name: {config}" through the filter registry.
func (d *decoder) filter(n *yaml.Node, f *Filter, path string) {
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		d.errorf(n, path, "want one filter name with its config, like `- logging: {}`")
		return
	}
	key, val := n.Content[0], n.Content[1]
	f.Name = key.Value
	m, ok := pipeline.Lookup(f.Name)
	if !ok {
		d.errorf(key, path, "unknown filter %q (registered: %s)", f.Name, strings.Join(pipeline.Modules(), ", "))
		return
	}
	f.Config = m.New()
	sub := join(path, f.Name)
	cv := reflect.ValueOf(f.Config)
	if cv.Kind() != reflect.Pointer {
		d.errorf(key, sub, "filter module %q returns a non-pointer config", f.Name)
		return
	}
	if val.Kind == yaml.ScalarNode && val.Tag == "!!null" {
		d.nodes[sub] = val
		return
	}
	d.decode(val, cv.Elem(), sub)
}
