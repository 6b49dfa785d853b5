package config

import (
	"regexp"

	"go.yaml.in/yaml/v3"
)

// secretKey matches field and header names whose values are secrets.
var secretKey = regexp.MustCompile(`(?i)(secret|token|password|passwd|authorization|api[-_]?key|cookie|credential|private)`)

// redacted returns the file's text for display: environment references stay
// unexpanded (so nothing from the environment shows), and values written
// literally under a secret-looking name (a field like `token:`, or a header
// operation whose `key:` is `authorization`) are replaced.
func redacted(data []byte) []byte {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil
	}
	redactNode(&root)
	out, err := yaml.Marshal(&root)
	if err != nil {
		return nil
	}
	return out
}

const redactedValue = "<redacted>"

func redactNode(n *yaml.Node) {
	switch n.Kind {
	case yaml.DocumentNode, yaml.SequenceNode:
		for _, c := range n.Content {
			redactNode(c)
		}
	case yaml.MappingNode:
		secretHeader := false
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "key" && secretKey.MatchString(n.Content[i+1].Value) {
				secretHeader = true
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if v.Kind == yaml.ScalarNode && (secretKey.MatchString(name) && !isFileField(name) ||
				secretHeader && (name == "value" || name == "default")) {
				v.Value, v.Tag, v.Style = redactedValue, "!!str", 0
				continue
			}
			redactNode(v)
		}
	}
}

var fileField = regexp.MustCompile(`_files?$`)

// isFileField reports fields that name a file holding a secret: the path
// is not the secret and helps operators.
func isFileField(name string) bool { return fileField.MatchString(name) }
