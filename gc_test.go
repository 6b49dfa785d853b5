package manifold

import (
	"runtime/debug"
	"testing"
)

// TestGCDefault: the binary collects at DefaultGCPercent unless GOGC is
// set, in which case it keeps what the runtime took from GOGC.
func TestGCDefault(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)
	for _, tc := range []struct {
		gogc string
		want int
	}{
		{"", DefaultGCPercent},
		{"150", 100}, // the runtime read GOGC at start; here it stands at 100
	} {
		debug.SetGCPercent(100)
		t.Setenv("GOGC", tc.gogc)
		if got := setGCDefault(); got != tc.want {
			t.Errorf("GOGC=%q: setGCDefault() = %d, want %d", tc.gogc, got, tc.want)
		}
		if got := debug.SetGCPercent(100); got != tc.want {
			t.Errorf("GOGC=%q: GC percent %d, want %d", tc.gogc, got, tc.want)
		}
	}
}
