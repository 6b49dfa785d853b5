package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestFanoutExample runs the example in-process and checks what the client
// printed.
func TestFanoutExample(t *testing.T) {
	var buf bytes.Buffer
	if err := run(&buf); err != nil {
		t.Fatalf("run: %v\n%s", err, buf.String())
	}
	out := buf.String()

	// Each step's section: from its header to the next one.
	section := func(header, next string) string {
		t.Helper()
		_, s, ok := strings.Cut(out, header)
		if !ok {
			t.Fatalf("output lacks %q:\n%s", header, out)
		}
		if next != "" {
			s, _, _ = strings.Cut(s, next)
		}
		return s
	}
	all := section("1. unary Version on all nodes", "2. unary Version")
	some := section("2. unary Version on nodes: node-c,node-a", "3. server-streaming Logs")
	logs := section("3. server-streaming Logs on all nodes", "")

	for _, tc := range []struct {
		step, got string
		want      []string // in this order
	}{
		{"Version on all nodes", all, []string{
			"node-a  v1.9.0\n",
			"node-b  error Unavailable: disk full\n",
			"node-c  v1.9.1\n",
		}},
		{"Version on node-c,node-a", some, []string{
			"node-c  v1.9.1\n",
			"node-a  v1.9.0\n",
		}},
		{"Logs", logs, []string{
			"[node-a] booted\n",
			"[node-a] kubelet started\n",
			"[node-a] ready\n",
			"[node-b] booted\n",
			"[node-b] error DataLoss: log file truncated: disk full\n",
			"[node-c] booted\n",
			"[node-c] kubelet started\n",
			"[node-c] ready\n",
		}},
	} {
		rest := tc.got
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("%s: lacks %q in order:\n%s", tc.step, w, tc.got)
				break
			}
			rest = rest[i+len(w):]
		}
	}
	if strings.Contains(some, "node-b") {
		t.Errorf("Version on node-c,node-a: node-b answered:\n%s", some)
	}
	if n := strings.Count(logs, "[node-b]"); n != 2 {
		t.Errorf("Logs: %d node-b lines, want 2 (one line, one error):\n%s", n, logs)
	}
}
