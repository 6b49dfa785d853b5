package main

import (
	"bytes"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestQuickstart runs the README's first command in-process.
func TestQuickstart(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		`← Echo/Say OK (1 request and 1 response messages`,
		`got "hello" from backend (tenant acme)`,
		`← Echo/Collect OK (3 request and 1 response messages`,
		`← Echo/Repeat OK (1 request and 3 response messages`,
		`got ["again #1" "again #2" "again #3"]`,
		`← Echo/Chat OK (2 request and 2 response messages`,
		`got ["ping!" "pong!"]`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
