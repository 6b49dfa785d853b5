package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildManifold builds the real binary from the product's module (with its
// own go.mod, as users build it) into dir.
func buildManifold(ctx context.Context, dir string) (string, error) {
	gomod, err := goOutput(ctx, "", "env", "GOMOD")
	if err != nil || filepath.Base(gomod) != "go.mod" {
		return "", fmt.Errorf("run from the bench/ directory of the Manifold repo (go env GOMOD: %q, %v)", gomod, err)
	}
	benchDir := filepath.Dir(gomod)
	if mod, _ := goOutput(ctx, benchDir, "list", "-m"); mod != "github.com/manifold-grpc/manifold/bench" {
		return "", fmt.Errorf("run from the bench/ directory of the Manifold repo (module %q)", mod)
	}
	root, err := goOutput(ctx, benchDir, "list", "-m", "-f", "{{.Dir}}", "github.com/manifold-grpc/manifold")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "manifold")
	logf("building manifold (%s/cmd/manifold)", root)
	if _, err := goOutput(ctx, root, "build", "-o", bin, "./cmd/manifold"); err != nil {
		return "", err
	}
	return bin, nil
}

// goOutput runs the go command in dir and returns its trimmed output.
func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String()), nil
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
	cmd   *exec.Cmd
	pid   int
	addr  string // gRPC listener
	admin string // admin listener
	done  chan struct{}
	err   error // exit status, once done is closed

	mu      sync.Mutex
	tail    []string
	levels  map[string]int // log records by level
	access  map[string]int // access-log records by grpc.code
	errLogs []string       // the first error records
}

// startProxy runs bin --config file and waits for both addresses.
func startProxy(bin, file string) (*proxy, error) {
	cmd := exec.Command(bin, "--config", file)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the driver
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	pw.Close()
	p := &proxy{cmd: cmd, pid: cmd.Process.Pid, done: make(chan struct{}), levels: map[string]int{}, access: map[string]int{}}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	addrs := make(chan [2]string, 4)
	go p.readOutput(pr, addrs)
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
		case <-p.done:
			return nil, fmt.Errorf("manifold exited before serving (%v):\n%s", p.err, p.output())
		case <-timeout.C:
			p.stop(time.Second)
			return nil, fmt.Errorf("manifold did not report its addresses within 30s:\n%s", p.output())
		}
	}
	return p, nil
}

// readOutput reads the JSON log: the addresses, and counts of records.
func (p *proxy) readOutput(r io.ReadCloser, addrs chan<- [2]string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		var rec struct {
			Level  string `json:"level"`
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
			Code   string `json:"grpc.code"`
		}
		_ = json.Unmarshal([]byte(line), &rec)
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 40 {
			p.tail = p.tail[len(p.tail)-40:]
		}
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
}

func (p *proxy) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// alive reports an error if the process has exited.
func (p *proxy) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("manifold exited (%v):\n%s", p.err, p.output())
	default:
		return nil
	}
}

// stop sends SIGTERM (a graceful drain) and waits up to grace, then kills.
// It reports whether the process had to be killed, and its exit status.
func (p *proxy) stop(grace time.Duration) (killed bool, err error) {
	select {
	case <-p.done:
		return false, p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return false, p.err
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
		return true, p.err
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
