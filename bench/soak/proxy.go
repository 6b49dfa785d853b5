package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/manifold-grpc/manifold/bench/internal/build"
	"github.com/manifold-grpc/manifold/bench/internal/child"
)

// buildManifold builds the real binary from the product's module (with its
// own go.mod, as users build it) into dir.
func buildManifold(ctx context.Context, dir string) (string, error) {
	_, root, err := build.Modules(ctx)
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "manifold")
	logf("building manifold (%s/cmd/manifold)", root)
	if err := build.Go(ctx, root, bin, "./cmd/manifold"); err != nil {
		return "", err
	}
	return bin, nil
}

// Names in the proxy's config: the one-to-one cluster and the fan-out group.
const (
	clusterName = "pair"
	groupName   = "trio"
)

// proxyConfig is the proxy's config file: the listener and the admin
// listener on ports the system picks (the proxy logs them), the access
// log, a one-to-one route for serviceOne to a cluster of the pair (with
// the fault filter delaying and aborting a few calls), and a
// fan-out route for serviceFan to the trio, whose method kinds the config
// states (no reflection: the backends have none).
func proxyConfig(pair, trio []*backend) string {
	var b strings.Builder
	b.WriteString(`# Written by bench/soak.
listeners: [{address: 127.0.0.1:0}]
admin: {address: 127.0.0.1:0}
drain_timeout: 5s
log: {level: info, format: json}
filters:
  - logging: {}
clusters:
  - name: ` + clusterName + `
    addresses: [`)
	for i, be := range pair {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(be.addr)
	}
	b.WriteString(`]
    connect_timeout: 1s
fanout:
  - name: ` + groupName + `
    members:
`)
	for _, be := range trio {
		fmt.Fprintf(&b, "      - {name: %s, target: passthrough:///%s, connect_timeout: 1s}\n", be.name, be.addr)
	}
	b.WriteString(`    kinds:
      - {match: ` + fullMethod(serviceFan, methodUnary) + `, kind: unary}
      - {match: ` + fullMethod(serviceFan, methodStream) + `, kind: server_streaming}
    reflection: false
routes:
  - name: fan
    match: {service: ` + serviceFan + `}
    fanout: ` + groupName + `
  - name: one
    match: {prefix: /` + serviceOne + `/}
    # Faults injected by the proxy itself, on top of the killed backends:
    # an aborted call never reaches a backend, a delayed one arrives late.
    filters:
      - fault:
          delay: {duration: 20ms, percent: 5}
          abort: {code: UNAVAILABLE, message: "soak: injected by the fault filter", percent: 2}
    route: ` + clusterName + `
`)
	return b.String()
}

// proxy is the Manifold process.
type proxy struct {
	*child.Process
	addr  string // gRPC listener
	admin string // admin listener

	mu      sync.Mutex
	levels  map[string]int // log records by level
	access  map[string]int // access-log records by grpc.code
	errLogs []string       // the first error records
}

// startProxy runs bin --config file and waits for both addresses.
func startProxy(bin, file string) (*proxy, error) {
	p := &proxy{levels: map[string]int{}, access: map[string]int{}}
	addrs := make(chan [2]string, 4)
	cp, err := child.Start("manifold", exec.Command(bin, "--config", file), func(line string) { p.record(line, addrs) })
	if err != nil {
		return nil, err
	}
	p.Process = cp
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for p.addr == "" || p.admin == "" {
		select {
		case a := <-addrs:
			if a[0] == "manifold serving" {
				p.addr = a[1]
			} else {
				p.admin = a[1]
			}
		case <-p.Done():
			return nil, fmt.Errorf("manifold exited before serving (%v):\n%s", p.Err(), p.Output())
		case <-timeout.C:
			p.Stop(time.Second)
			return nil, fmt.Errorf("manifold did not report its addresses within 30s:\n%s", p.Output())
		}
	}
	return p, nil
}

// record counts one line of the JSON log, and reports the addresses.
func (p *proxy) record(line string, addrs chan<- [2]string) {
	var rec struct {
		Level  string `json:"level"`
		Msg    string `json:"msg"`
		Listen string `json:"listen"`
		Code   string `json:"grpc.code"`
	}
	_ = json.Unmarshal([]byte(line), &rec)
	p.mu.Lock()
	if rec.Level == "" {
		rec.Level = "(not JSON)"
	}
	p.levels[rec.Level]++
	if rec.Msg == "finished call" {
		p.access[rec.Code]++
	} else if (rec.Level == "ERROR" || rec.Level == "WARN") && len(p.errLogs) < 10 {
		p.errLogs = append(p.errLogs, line)
	}
	p.mu.Unlock()
	if (rec.Msg == "manifold serving" || rec.Msg == "admin serving") && rec.Listen != "" {
		select {
		case addrs <- [2]string{rec.Msg, rec.Listen}:
		default:
		}
	}
}

// promMetrics are the process metrics the admin /metrics reports.
type promMetrics struct {
	Goroutines int
	OpenFDs    int
	RSSBytes   int64
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// scrape reads go_goroutines, process_open_fds and
// process_resident_memory_bytes from the admin /metrics (Prometheus text).
func (p *proxy) scrape() (promMetrics, error) {
	resp, err := metricsClient.Get("http://" + p.admin + "/metrics")
	if err != nil {
		return promMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return promMetrics{}, fmt.Errorf("/metrics: %s", resp.Status)
	}
	var m promMetrics
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch name {
		case "go_goroutines":
			m.Goroutines = int(v)
		case "process_open_fds":
			m.OpenFDs = int(v)
		case "process_resident_memory_bytes":
			m.RSSBytes = int64(v)
		default:
			continue
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return m, err
	}
	if found < 3 {
		return m, fmt.Errorf("/metrics: %d of go_goroutines, process_open_fds, process_resident_memory_bytes found", found)
	}
	return m, nil
}
