package config_test

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/manifold-grpc/manifold/config"
	// The built-in filters, as the binary registers them, so that their
	// configs are decoded and validated too.
	_ "github.com/manifold-grpc/manifold/filters/auth"
	_ "github.com/manifold-grpc/manifold/filters/clientcert"
	_ "github.com/manifold-grpc/manifold/filters/concurrency"
	_ "github.com/manifold-grpc/manifold/filters/fault"
	_ "github.com/manifold-grpc/manifold/filters/logging"
	_ "github.com/manifold-grpc/manifold/filters/metadata"
	_ "github.com/manifold-grpc/manifold/filters/ratelimit"
	_ "github.com/manifold-grpc/manifold/filters/tracing"
)

// fuzzEnvValue is the value of every environment variable the fuzzed files
// refer to; it must never reach Config.Source.
const fuzzEnvValue = "fuzz-env-value-SECRET"

func fuzzEnv(name string) (string, bool) {
	if strings.HasPrefix(name, "UNSET") {
		return "", false
	}
	return fuzzEnvValue, true
}

// leafErrors flattens errors.Join trees.
func leafErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, leafErrors(e)...)
		}
		return out
	}
	return []error{err}
}

// unlocated reports the one problem Parse gives without a line: a file
// with no YAML document at all. Every other problem, syntax errors on the
// first line and unknown anchors included, must be located.
func unlocated(e *config.Error, problems int) bool {
	return e.Line == 0 && e.Path == "" && problems == 1 && e.Msg == "the file is empty"
}

// problem is a *config.Error with its message's line numbers blanked out.
type problem struct {
	Line, Column int
	Path, Msg    string
}

var yamlLineRE = regexp.MustCompile(`line \d+`)

// problems checks that every problem of err is a located *config.Error of
// the file and returns them, sorted.
func problems(t *testing.T, name string, data []byte, err error) []problem {
	lines := len(yamlLines(data))
	t.Helper()
	leaves := leafErrors(err)
	var out []problem
	for _, e := range leaves {
		var ce *config.Error
		if !errors.As(e, &ce) {
			t.Fatalf("problem %q (%T) is not a *config.Error", e, e)
		}
		if ce.File != name || (ce.Line < 1 && !unlocated(ce, len(leaves))) || ce.Line > lines+1 || ce.Column < 0 {
			t.Fatalf("problem %q located at %s:%d:%d; the file has %d lines", e, ce.File, ce.Line, ce.Column, lines)
		}
		if prefix := fmt.Sprintf("%s:%d:%d: ", name, ce.Line, ce.Column); !strings.HasPrefix(e.Error(), prefix) && !unlocated(ce, len(leaves)) {
			t.Fatalf("problem %q does not start with %q", e, prefix)
		}
		if ce.Msg == "" {
			t.Fatalf("problem %q has no message", e)
		}
		if ce.Line > 0 && ce.Column > 0 && ce.Path != "" {
			// The position is in the file; an unknown field points at
			// its key (or the quote, tag, anchor, alias or collection that
			// starts it).
			text := lineText(data, ce.Line)
			if ce.Column > len(text)+1 {
				t.Fatalf("problem %q: line %d has only %d bytes: %q", e, ce.Line, len(text), text)
			}
			if at := text[ce.Column-1:]; strings.HasPrefix(ce.Msg, "unknown field") && !strings.ContainsAny(at[:1], "\"'?!&*[{") && !startsWithKey(at, ce.Path) {
				t.Fatalf("problem %q: line %d column %d is %q, not the key", e, ce.Line, ce.Column, at)
			}
		}
		out = append(out, problem{ce.Line, ce.Column, ce.Path, yamlLineRE.ReplaceAllString(ce.Msg, "line N")})
	}
	slices.SortFunc(out, compareProblems)
	return out
}

// startsWithKey reports whether text starts with the last key of path,
// which may itself hold dots.
func startsWithKey(text, path string) bool {
	for i := range len(path) {
		if i > 0 && path[i-1] != '.' {
			continue
		}
		key := path[i:]
		if strings.HasPrefix(text, key) {
			return true
		}
		// A plain key folded over several lines ("00\n0" reads "00 0",
		// "0\n\n0" reads "0\n0"): this line holds its first part.
		if j := strings.IndexAny(key, " \n"); j > 0 && strings.TrimRight(text, " \t\r") == key[:j] {
			return true
		}
	}
	return false
}

// yamlLines splits data into lines as YAML counts them: CR LF, a lone CR
// and LF each end a line.
func yamlLines(data []byte) []string {
	s := strings.ReplaceAll(string(data), "\r\n", "\n")
	return strings.Split(strings.ReplaceAll(s, "\r", "\n"), "\n")
}

// lineText returns line n (from 1) of data, without its newline.
func lineText(data []byte, n int) string {
	lines := yamlLines(data)
	if n > len(lines) {
		return ""
	}
	return lines[n-1]
}

func compareProblems(a, b problem) int {
	return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column),
		strings.Compare(a.Path, b.Path), strings.Compare(a.Msg, b.Msg))
}

// shiftable reports whether a comment line can go before data without
// changing its meaning: not before a byte order mark.
func shiftable(data []byte) bool {
	return !bytes.HasPrefix(data, []byte("\xef\xbb\xbf")) && !bytes.HasPrefix(data, []byte("\xff\xfe")) &&
		!bytes.HasPrefix(data, []byte("\xfe\xff"))
}

// FuzzParse feeds arbitrary file contents to [config.Parse]. Whatever the
// input, Parse returns exactly one of a config and an error, and
//
//   - every problem is a *config.Error for this file whose text starts
//     with "FILE:LINE:COLUMN: ", the line within the file (or one past its
//     end), so a user can find it;
//   - parsing the same input twice gives the same config, or the same
//     problems;
//   - a comment line added at the top changes no config, and moves every
//     problem exactly one line down (so lines are not off by one);
//   - a config has a listener and a route, and its Source (shown on the
//     admin endpoint) never holds a value that came from the environment.
func FuzzParse(f *testing.F) {
	seeds := []string{
		"",
		"listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\nroutes: [{name: r, route: c}]\n",
		"listeners: [{address: \"${ADDR}\"}]\nclusters: [{name: c, target: ${T:-a:1}}]\nroutes: [{name: r, route: c, match: {authority: \"${UNSET_HOST}\"}}]\n",
		"listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    policy: quorum:2\n    layout: {hostname_field: 2, error_field: 2}\n    members: [{name: a, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g, match: {prefix: /a.}}]\n",
		"listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1}]\nfilters:\n  - headers: {request: [{set: {key: x-a, value: b}}, {rename: {key: a-bin, to: b}}]}\n  - logging: {}\nroutes: [{name: r, route: c}]\n",
		"listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1}]\nroutes:\n  - name: r\n    route: c\n    filters:\n      - auth: {providers: [{name: p, issuer: i, hmac_secret_file: /nonexistent, algorithms: [HS256]}], rules: [{methods: [/a.B/*], action: public}]}\n",
		"a: &a [x, x]\nb: &b [*a, *a]\nlisteners: *b\n",
		"listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1, retry: [{methods: [a.B]}], circuit_breakers: {max_requests: 2}}]\nroutes:\n  - name: r\n    route: c\n    filters:\n      - rate_limit: {rate: 1.5, burst: 2, key: \"header:x-user\"}\n      - concurrency_limit: {max_concurrent: 2, max_pending: 1, queue_timeout: 10ms}\n      - fault: {delay: {duration: 1ms, percent: 10}, abort: {code: UNAVAILABLE}}\n      - client_cert: {uris: [\"spiffe://td/ns/*\"]}\n",
		"listeners: [\n",
		"--- {}\n--- {}\n",
		"listeners: [{address: x, tls: {cert_file: /nonexistent.pem, key_file: /nonexistent.key}}]\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if files, err := filepath.Glob(filepath.Join("..", "examples", "config", "*.yaml")); err == nil {
		for _, name := range files {
			if b, err := os.ReadFile(name); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 8<<10 || bytes.Contains(data, []byte("/dev/")) || bytes.Contains(data, []byte("/proc/")) {
			return // files the validation would read: keep to small, plain ones
		}
		const name = "fuzz.yaml"
		cfg, err := config.Parse(name, data, fuzzEnv)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", cfg != nil, err)
		}
		if err != nil {
			probs := problems(t, name, data, err)
			_, err2 := config.Parse(name, data, fuzzEnv)
			if err2 == nil {
				t.Fatalf("second Parse succeeded, first failed: %v", err)
			}
			if again := problems(t, name, data, err2); !slices.Equal(again, probs) {
				t.Fatalf("two Parse runs disagree:\n%v\n---\n%v", probs, again)
			}

			// A line added at the top moves every problem one line down
			// and changes nothing else.
			if !shiftable(data) {
				return
			}
			moved := append([]byte("# added\n"), data...)
			_, err3 := config.Parse(name, moved, fuzzEnv)
			if err3 == nil {
				t.Fatalf("Parse accepts the file after a comment line, not before: %v", err)
			}
			shifted := problems(t, name, moved, err3)
			if len(probs) == 1 && probs[0].Path == "" {
				// A YAML syntax error: yaml.v3 gives parser errors the
				// 0-based line of the enclosing construct, so they do
				// not move with the text (see the report of issue 8).
				return
			}
			for i := range probs {
				probs[i].Line++
			}
			slices.SortFunc(probs, compareProblems)
			if !slices.Equal(shifted, probs) {
				t.Fatalf("after a comment line at the top, problems\n%v\nwant\n%v", shifted, probs)
			}
			return
		}

		if len(cfg.Listeners) == 0 || len(cfg.Routes) == 0 {
			t.Fatalf("config without listeners or routes: %+v", cfg)
		}
		if bytes.Contains(cfg.Source, []byte(fuzzEnvValue)) && !bytes.Contains(data, []byte(fuzzEnvValue)) {
			t.Fatalf("Source shows a value from the environment:\n%s", cfg.Source)
		}
		cfg2, err := config.Parse(name, data, fuzzEnv)
		if err != nil {
			t.Fatalf("second Parse failed: %v", err)
		}
		if !reflect.DeepEqual(cfg, cfg2) {
			t.Fatalf("two Parse runs disagree:\n%+v\n%+v", cfg, cfg2)
		}
		if shiftable(data) {
			cfg3, err := config.Parse(name, append([]byte("# added\n"), data...), fuzzEnv)
			if err != nil {
				t.Fatalf("Parse fails after a comment line at the top: %v", err)
			}
			cfg2.Source, cfg3.Source = nil, nil
			if !reflect.DeepEqual(cfg2, cfg3) {
				t.Fatalf("a comment line changed the config:\n%+v\n%+v", cfg2, cfg3)
			}
		}
	})
}
