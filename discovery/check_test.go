package discovery

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("a=127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("a=127.0.0.1:1\nnot a line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ target, wantErr string }{
		{"dns:///nodes.example.svc:50000", ""},
		{"dns://127.0.0.1:53/nodes.test:50000", ""},
		{"file://" + good, ""},
		{"file://" + good + "?interval=5s", ""},
		{"file://" + bad, "line 2"},
		{"file://" + filepath.Join(dir, "missing"), "no such file"},
		{"file://" + good + "?every=5s", "unknown parameter"},
		{"nodes.example.svc:50000", "no resolver for scheme"},
		{"/etc/nodes", "no scheme"},
		{"nosuchscheme:///x", `no resolver for scheme "nosuchscheme"`},
		{"xds:///nodes", "xds targets do not list members"},
		{"dns://[::1", "missing ']'"},
	} {
		err := Check(tc.target)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tc.target, err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Check(%q) = %v, want an error containing %q", tc.target, err, tc.wantErr)
		}
	}
}
