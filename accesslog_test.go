package manifold

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestAccessLogRotation: the logging filter's output file is rotated the
// way docs/operations.md says: move the file, reload; records of calls
// before the reload are in the moved file (written when the old filter
// closed), records after it in a new file at the configured path.
func TestAccessLogRotation(t *testing.T) {
	backend, _ := testbackend.Start(t, &testbackend.Service{})
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	config := func(flush string) string {
		return `listeners: [{address: 127.0.0.1:0}]
admin: {address: 127.0.0.1:0}
clusters: [{name: backend, target: "passthrough:///` + backend + `"}]
filters:
  - logging: {output: ` + logPath + `, flush_interval: ` + flush + `, headers: [x-request-id]}
routes: [{name: all, route: backend}]
`
	}
	// Until the reload, records wait in the buffer: only closing the old
	// filter writes them.
	file := writeFile(t, "m.yaml", config("1h"))
	proxyAddr, logs := startRun(t, "--config", file)
	m := regexp.MustCompile(`msg="admin serving" listen=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no admin line: %s", logs.String())
	}
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, proxyAddr))
	call := func(id string) {
		t.Helper()
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-request-id", id)
		if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	call("before-1")
	call("before-2")

	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(logPath, rotated); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, []byte(config("10ms")), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+m[1]+"/reload", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d %s", resp.StatusCode, body)
	}
	call("after-1")

	// The old filter is closed once its last call has ended: its records
	// reach the moved file then.
	waitFor(t, func() bool { return strings.Count(readFile(rotated), "\n") == 2 })
	if old := readFile(rotated); !strings.Contains(old, "before-1") || !strings.Contains(old, "before-2") || strings.Contains(old, "after-1") {
		t.Errorf("moved file holds %q, want the two calls before the reload", old)
	}
	// The new filter writes into a new file at the configured path.
	waitFor(t, func() bool { return strings.Count(readFile(logPath), "\n") == 1 })
	if now := readFile(logPath); !strings.Contains(now, "after-1") {
		t.Errorf("new file holds %q, want the call after the reload", now)
	}
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
	}
}
