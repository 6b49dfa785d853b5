package admin_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/manifold-grpc/manifold/admin"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return rec.Code, string(b)
}

func TestEndpoints(t *testing.T) {
	h := admin.New()
	if code, body := get(t, h, "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz with no checks = %d", code)
	}
	var broken error = errors.New("not yet")
	h.SetCheck("cluster users", func() error { return broken })
	h.SetCheck("listeners", func() error { return nil })
	if code, body := get(t, h, "/readyz"); code != 503 || !strings.Contains(body, "cluster users: not yet") || strings.Contains(body, "listeners") {
		t.Errorf("/readyz = %d %q", code, body)
	}
	broken = nil
	if code, _ := get(t, h, "/readyz"); code != 200 {
		t.Errorf("/readyz after recovery = %d", code)
	}
	if code, _ := get(t, h, "/config"); code != 404 {
		t.Errorf("/config without a file = %d", code)
	}
	h.SetConfig([]byte("clusters: [{name: a, target: ${TARGET}}]\n"))
	if code, body := get(t, h, "/config"); code != 200 || !strings.Contains(body, "${TARGET}") {
		t.Errorf("/config = %d %q", code, body)
	}
	if code, _ := get(t, h, "/metrics"); code != 404 {
		t.Errorf("/metrics unconfigured = %d", code)
	}
	h.SetMetrics(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "m 1\n") }))
	if code, body := get(t, h, "/metrics"); code != 200 || body != "m 1\n" {
		t.Errorf("/metrics = %d %q", code, body)
	}
	if code, _ := get(t, h, "/nope"); code != 404 {
		t.Errorf("/nope = %d", code)
	}
}
