package manifold

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestValidateCommand: exit codes and messages of `manifold validate`.
func TestValidateCommand(t *testing.T) {
	good := writeFile(t, "good.yaml", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\nroutes: [{name: r, route: c}]\n")
	bad := writeFile(t, "bad.yaml", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\nroutes:\n  - name: r\n    route: d\n    filters: [{logging: {headers: [authorization]}}]\n")
	// Valid as a file, but its key file only fails when the filter is built.
	unreadableKey := writeFile(t, "key.yaml", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\nfilters:\n  - auth:\n      providers: [{name: p, issuer: i, algorithms: [HS256], hmac_secret_file: /nonexistent/secret}]\nroutes: [{name: r, route: c}]\n")
	for _, tc := range []struct {
		args []string
		code int
		want []string
	}{
		{[]string{"validate", "--config", good}, 0, []string{"good.yaml: ok"}},
		{[]string{"validate", "--config", bad}, 1, []string{"bad.yaml:5:12: routes[0].route: no cluster named \"d\"", "bad.yaml:6:", "routes[0].filters[0].logging.headers[0]"}},
		{[]string{"validate", "--config", "/nonexistent.yaml"}, 1, []string{"no such file"}},
		{[]string{"validate"}, 2, []string{"usage"}},
		{[]string{"validate", "--config", unreadableKey}, 1, []string{"hmac"}},
	} {
		var out proxytest.SyncBuffer
		code := run(context.Background(), tc.args, &out, nil)
		if code != tc.code {
			t.Errorf("%v: exit %d, want %d; output %s", tc.args, code, tc.code, out.String())
		}
		for _, w := range tc.want {
			if !strings.Contains(out.String(), w) {
				t.Errorf("%v: output lacks %q:\n%s", tc.args, w, out.String())
			}
		}
	}
}

// TestRunConfig runs `manifold --config` against an in-process backend.
func TestRunConfig(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	file := writeFile(t, "m.yaml", `
listeners: [{address: 127.0.0.1:0}]
clusters: [{name: backend, target: "passthrough:///`+addr+`"}]
filters: [{logging: {}}]
routes: [{name: all, route: backend}]
`)
	proxyAddr, logs := startRun(t, "--config", file)
	client := testgrpc.NewTestServiceClient(proxytest.Dial(t, proxyAddr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.UnaryCall(ctx, &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "grpc.code=OK") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "grpc.code=OK") {
		t.Errorf("no access log line: %s", logs.String())
	}
}

// TestAdminEndpoints: with an admin address, /healthz answers, /readyz turns
// ready once the cluster has connected, and /config shows the file as
// written, without the environment's values.
func TestAdminEndpoints(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	t.Setenv("MANIFOLD_TEST_SECRET_TARGET", "passthrough:///"+addr)
	file := writeFile(t, "m.yaml", `
listeners: [{address: 127.0.0.1:0}]
admin: {address: 127.0.0.1:0}
clusters: [{name: backend, target: "${MANIFOLD_TEST_SECRET_TARGET}"}]
routes: [{name: all, route: backend}]
`)
	_, logs := startRun(t, "--config", file)
	m := regexp.MustCompile(`msg="admin serving" listen=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no admin line in %s", logs.String())
	}
	base := "http://" + m[1]
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	code, body := get("/readyz")
	for code != 200 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		code, body = get("/readyz")
	}
	if code != 200 {
		t.Errorf("/readyz = %d %s", code, body)
	}
	if code, body := get("/config"); code != 200 || !strings.Contains(body, "${MANIFOLD_TEST_SECRET_TARGET}") || strings.Contains(body, addr) {
		t.Errorf("/config = %d %s", code, body)
	}
}

// TestAdminBindsLoopbackByDefault: an admin address without a host serves
// on 127.0.0.1 only; serving every interface must be asked for by name.
func TestAdminBindsLoopbackByDefault(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{":9901", "127.0.0.1:9901"},
		{":0", "127.0.0.1:0"},
		{"0.0.0.0:9901", "0.0.0.0:9901"},
		{"[::]:9901", "[::]:9901"},
		{"10.1.2.3:9901", "10.1.2.3:9901"},
		{"localhost:9901", "localhost:9901"},
		{"9901", "9901"}, // malformed: net.Listen names the problem
	} {
		if got := adminBindAddress(tc.in); got != tc.want {
			t.Errorf("adminBindAddress(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}

	addr, _ := testbackend.Start(t, &testbackend.Service{})
	file := writeFile(t, "m.yaml", `
listeners: [{address: 127.0.0.1:0}]
admin: {address: ":0"}
clusters: [{name: backend, target: "passthrough:///`+addr+`"}]
routes: [{name: all, route: backend}]
`)
	_, logs := startRun(t, "--config", file)
	m := regexp.MustCompile(`msg="admin serving" listen=(\S+)`).FindStringSubmatch(logs.String())
	if m == nil {
		t.Fatalf("no admin line in %s", logs.String())
	}
	if host, _, _ := net.SplitHostPort(m[1]); host != "127.0.0.1" {
		t.Errorf("admin on %s, want 127.0.0.1 only", m[1])
	}
}

// TestConfigListenFails: a listener address that is taken ends the process
// with an error naming it, and leaves nothing running (the servers built
// before listening hold goroutines; TestMain's leak check sees them).
func TestConfigListenFails(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	file := writeFile(t, "m.yaml", "listeners: [{address: "+taken.Addr().String()+"}]\nclusters: [{name: c, target: \"passthrough:///127.0.0.1:1\"}]\nroutes: [{name: r, route: c}]\n")
	var out proxytest.SyncBuffer
	if code := Run(context.Background(), []string{"--config", file}, &out); code != 1 || !strings.Contains(out.String(), "address already in use") {
		t.Errorf("exit %d, output %s", code, out.String())
	}
}
