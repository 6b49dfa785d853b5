package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// proc is one child process: the backend or a proxy.
type proc struct {
	name  string
	cmd   *exec.Cmd
	pid   int
	addrs []string

	stdin io.WriteCloser
	done  chan struct{} // closed when the process has exited
	err   error         // the exit status, once done is closed

	mu   sync.Mutex
	tail []string // the last lines of output, for error messages
}

// procSet holds every process started, so that all of them are stopped at
// the end, whatever happened.
type procSet struct {
	mu    sync.Mutex
	procs []*proc
}

// startTimeout bounds the wait for a process to report its address.
const startTimeout = 30 * time.Second

// start runs bin with args, on core when pinning, with GOMAXPROCS=1, and
// waits until it reported want listening addresses. A process reports an
// address with a "listening ADDR" line or, for Manifold, its JSON "manifold
// serving" log record.
func (ps *procSet) start(name string, core int, pinned bool, want int, bin string, args ...string) (*proc, error) {
	argv := append([]string{bin}, args...)
	if pinned {
		argv = append([]string{"taskset", "-c", strconv.Itoa(core)}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = childEnv()
	// If the driver dies, so do its children.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	stdin, err := cmd.StdinPipe()
	if err != nil {
		pr.Close()
		pw.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pw.Close()
	p := &proc{name: name, cmd: cmd, pid: cmd.Process.Pid, stdin: stdin, done: make(chan struct{})}
	ps.mu.Lock()
	ps.procs = append(ps.procs, p)
	ps.mu.Unlock()
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	addrs := make(chan string, want)
	go p.readOutput(pr, addrs)
	deadline := time.NewTimer(startTimeout)
	defer deadline.Stop()
	for len(p.addrs) < want {
		select {
		case a := <-addrs:
			p.addrs = append(p.addrs, a)
		case <-p.done:
			return nil, fmt.Errorf("%s exited before serving (%v):\n%s", name, p.err, p.output())
		case <-deadline.C:
			return nil, fmt.Errorf("%s did not report %d addresses within %v:\n%s", name, want, startTimeout, p.output())
		}
	}
	return p, nil
}

// readOutput keeps the last lines of the process's output and reports the
// addresses it announces.
func (p *proc) readOutput(r io.ReadCloser, addrs chan<- string) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, line)
		if len(p.tail) > 40 {
			p.tail = p.tail[len(p.tail)-40:]
		}
		p.mu.Unlock()
		if a, ok := strings.CutPrefix(line, "listening "); ok {
			select {
			case addrs <- strings.TrimSpace(a):
			default:
			}
			continue
		}
		var rec struct {
			Msg    string `json:"msg"`
			Listen string `json:"listen"`
		}
		if strings.HasPrefix(line, "{") && json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "manifold serving" && rec.Listen != "" {
			select {
			case addrs <- rec.Listen:
			default:
			}
		}
	}
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// alive reports an error if the process has exited.
func (p *proc) alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v):\n%s", p.name, p.err, p.output())
	default:
		return nil
	}
}

// stop ends the process: SIGTERM and its standard input closed, then
// SIGKILL after a grace period.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.stdin.Close()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(2 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
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

// clockTicks is the unit of utime and stime in /proc/PID/stat.
var clockTicks = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && n > 0 {
			return float64(n)
		}
	}
	return 100
})

// cpuSeconds returns the user plus system CPU time pid has used, from
// /proc/PID/stat (utime and stime, fields 14 and 15).
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc/PID/stat")
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3, state
	if len(f) < 13 {
		return 0, errors.New("short /proc/PID/stat")
	}
	utime, err1 := strconv.ParseUint(f[11], 10, 64)
	stime, err2 := strconv.ParseUint(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	return float64(utime+stime) / clockTicks(), nil
}

// memKiB returns VmRSS and VmHWM (peak RSS) of pid, in KiB.
func memKiB(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
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
