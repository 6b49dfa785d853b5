package logging

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// flakyWriter fails while fail is set.
type flakyWriter struct {
	fail bool
	got  bytes.Buffer
}

func (w *flakyWriter) Write(p []byte) (int, error) {
	if w.fail {
		return 0, errors.New("disk full")
	}
	return w.got.Write(p)
}

// TestOutputWriteFailure: a failing write drops its records and is
// reported once, not once per record; the recovery is reported too, and
// later records are written.
func TestOutputWriteFailure(t *testing.T) {
	var process bytes.Buffer
	w := &flakyWriter{fail: true}
	o := &output{name: "test", log: slog.New(slog.NewTextHandler(&process, nil)), w: w, buf: make([]byte, 0, 16)}
	for range 5 {
		_, _ = o.Write([]byte("record-that-is-longer-than-the-buffer\n"))
	}
	w.fail = false
	_, _ = o.Write([]byte("r1\n"))
	o.mu.Lock()
	o.flushLocked()
	o.mu.Unlock()
	if n := strings.Count(process.String(), "access log write failed"); n != 1 {
		t.Errorf("failure reported %d times, want once:\n%s", n, process.String())
	}
	if !strings.Contains(process.String(), "disk full") || !strings.Contains(process.String(), "succeed again") {
		t.Errorf("process log = %q", process.String())
	}
	if w.got.String() != "r1\n" {
		t.Errorf("written %q, want only the record after recovery", w.got.String())
	}
}
