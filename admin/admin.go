package admin

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Check is one readiness condition: nil when ready, or why not.
type Check func() error

// Handler serves the admin endpoints. Its checks and config can change
// while it serves (a config reload), so it is safe for concurrent use.
type Handler struct {
	mux *http.ServeMux

	mu      sync.RWMutex
	checks  map[string]Check
	config  []byte
	metrics http.Handler
	reload  func() error
}

// New returns an admin handler with no checks (always ready) and no config.
func New() *Handler {
	h := &Handler{mux: http.NewServeMux(), checks: map[string]Check{}}
	h.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	h.mux.HandleFunc("GET /readyz", h.ready)
	h.mux.HandleFunc("GET /config", h.showConfig)
	h.mux.HandleFunc("GET /metrics", h.showMetrics)
	h.mux.HandleFunc("POST /reload", h.doReload)
	return h
}

// ServeHTTP implements [http.Handler].
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// SetCheck adds or replaces the readiness check called name; a nil check
// removes it.
func (h *Handler) SetCheck(name string, c Check) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if c == nil {
		delete(h.checks, name)
		return
	}
	h.checks[name] = c
}

// SetConfig sets the config text /config shows.
func (h *Handler) SetConfig(text []byte) {
	h.mu.Lock()
	h.config = append([]byte(nil), text...)
	h.mu.Unlock()
}

// SetMetrics sets the handler /metrics serves (an OpenTelemetry Prometheus
// exporter's, say).
func (h *Handler) SetMetrics(m http.Handler) {
	h.mu.Lock()
	h.metrics = m
	h.mu.Unlock()
}

// SetReload sets what POST /reload does: reload the config file,
// answering 200 when it was applied and 422 with the errors when it was
// not (the running config stays).
func (h *Handler) SetReload(fn func() error) {
	h.mu.Lock()
	h.reload = fn
	h.mu.Unlock()
}

func (h *Handler) doReload(w http.ResponseWriter, _ *http.Request) {
	h.mu.RLock()
	fn := h.reload
	h.mu.RUnlock()
	if fn == nil {
		http.Error(w, "reload needs a config file", http.StatusNotFound)
		return
	}
	if err := fn(); err != nil {
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	fmt.Fprintln(w, "reloaded")
}

func (h *Handler) ready(w http.ResponseWriter, _ *http.Request) {
	h.mu.RLock()
	names := make([]string, 0, len(h.checks))
	for n := range h.checks {
		names = append(names, n)
	}
	checks := make([]Check, 0, len(names))
	sort.Strings(names)
	for _, n := range names {
		checks = append(checks, h.checks[n])
	}
	h.mu.RUnlock()
	var failed []string
	for i, c := range checks {
		if err := c(); err != nil {
			failed = append(failed, names[i]+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, strings.Join(failed, "\n"))
		return
	}
	fmt.Fprintln(w, "ready")
}

func (h *Handler) showConfig(w http.ResponseWriter, _ *http.Request) {
	h.mu.RLock()
	cfg := h.config
	h.mu.RUnlock()
	if cfg == nil {
		http.Error(w, "no config file (quick mode)", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(cfg)
}

func (h *Handler) showMetrics(w http.ResponseWriter, r *http.Request) {
	h.mu.RLock()
	m := h.metrics
	h.mu.RUnlock()
	if m == nil {
		http.Error(w, "metrics are not configured", http.StatusNotFound)
		return
	}
	m.ServeHTTP(w, r)
}
