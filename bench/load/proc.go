package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/manifold-grpc/manifold/bench/internal/child"
)

// proc is one child process: the backend or a proxy.
type proc struct {
	*child.Process
	addrs []string
	stdin io.WriteCloser
}

// procSet holds every process started, so that all of them are stopped at
// the end, whatever happened.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// startTimeout bounds the wait for a process to report its address.
const startTimeout = 30 * time.Second

// start runs bin with args, on core when pinning, with GOMAXPROCS=1 and
// env added to the environment, and
// waits until it reported want listening addresses. A process reports an
// address with a "listening ADDR" line or, for Manifold, its JSON "manifold
// serving" log record.
func (ps *procSet) start(name string, env []string, core int, pinned bool, want int, bin string, args ...string) (*proc, error) {
	argv := append([]string{bin}, args...)
	if pinned {
		argv = append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(childEnv(), env...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	addrs := make(chan string, want)
	cp, err := child.Start(name, cmd, func(line string) {
		if a, ok := listening(line); ok {
			select {
			case addrs <- a:
			default:
			}
		}
	})
	if err != nil {
		return nil, err
	}
	p := &proc{Process: cp, stdin: stdin}
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()

	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for len(p.addrs) < want {
		select {
		case a := <-addrs:
			p.addrs = append(p.addrs, a)
		case <-p.Done():
			return nil, fmt.Errorf("%s exited before serving (%v):\n%s", name, p.Err(), p.Output())
		case <-deadline.C:
			return nil, fmt.Errorf("%s did not report %d addresses within %v:\n%s", name, want, startTimeout, p.Output())
		}
	}
	return p, nil
}

// listening returns the address an output line announces: a "listening
// ADDR" line or Manifold's JSON "manifold serving" log record.
func listening(line string) (string, bool) {
	if a, ok := strings.CutPrefix(line, "listening "); ok {
		return strings.TrimSpace(a), true
	}
	var rec struct {
		Msg    string `json:"msg"`
		Listen string `json:"listen"`
	}
	if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "manifold serving" && rec.Listen != "" {
		return rec.Listen, true
	}
	return "", false
}

// stop ends the process: SIGTERM and its standard input closed, then
// SIGKILL after a grace period.
func (p *proc) stop() {
	select {
	case <-p.Done():
		return
	default:
	}
	_ = p.stdin.Close()
	_, _ = p.Stop(2 * time.Second)
}

// stopAll stops every process started so far.
func (ps *procSet) stopAll() {
	ps.mu.Lock()
	procs := ps.procs
	ps.procs = nil
	ps.mu.Unlock()
	var wg sync.WaitGroup
	for _, p := range procs {
		wg.Go(p.stop)
	}
	wg.Wait()
}

// childEnv is the driver's environment without settings that would change
// what the children measure (telemetry export, GOMAXPROCS), with
// GOMAXPROCS=1.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "OTEL_") || k == "GOMAXPROCS" || strings.HasPrefix(k, "MANIFOLD_BENCH_") {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOMAXPROCS=1")
}

// resetPeak resets pid's VmHWM to its current RSS (Linux 4.0 and later),
// so that each run reports its own peak. It reports whether that worked;
// when not, the peak is the process's peak so far.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// cpuCount counts the machine's processors in /proc/cpuinfo (not the ones
// this process may run on).
func cpuCount() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "processor") {
			n++
		}
	}
	return n
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// raiseFileLimit raises the soft RLIMIT_NOFILE to the hard limit; the
// children inherit it.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, err
		}
	}
	return lim.Cur, nil
}
