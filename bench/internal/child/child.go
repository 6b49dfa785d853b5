package child

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// TailLines is how many of the last output lines a [Process] keeps.
const TailLines = 40

// Process is a started child process.
type Process struct {
	// Name names the process in error messages.
	Name string
	// Pid is the process id.
	Pid int

	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited
	err  error         // the exit status, once done is closed

	mu   sync.Mutex
	tail []string // the last TailLines lines of output
}

// Start starts cmd with its standard output and error joined and with
// SIGKILL as its parent-death signal (it replaces cmd.SysProcAttr). It
// calls line, from one goroutine, with each line of output after keeping
// it in the tail; line may be nil. Lines may be up to 1 MiB long. Pipes
// such as cmd.StdinPipe must be made before Start.
func Start(name string, cmd *exec.Cmd, line func(string)) (*Process, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // dies with the driver
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		pr.Close()
		pw.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	pw.Close()
	p := &Process{Name: name, Pid: cmd.Process.Pid, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	go p.read(pr, line)
	return p, nil
}

// read keeps the last lines of output and passes each to line.
func (p *Process) read(r io.ReadCloser, line func(string)) {
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		s := sc.Text()
		p.mu.Lock()
		p.tail = append(p.tail, s)
		if len(p.tail) > TailLines {
			p.tail = p.tail[len(p.tail)-TailLines:]
		}
		p.mu.Unlock()
		if line != nil {
			line(s)
		}
	}
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit status; it is set once [Process.Done] is
// closed.
func (p *Process) Err() error { return p.err }

// Output returns the last lines of output read so far, joined by "\n".
func (p *Process) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// Alive returns nil while the process runs; once it has exited, an error
// with its exit status and its last lines of output.
func (p *Process) Alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("%s exited (%v):\n%s", p.Name, p.err, p.Output())
	default:
		return nil
	}
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// kills it. It reports whether the process had to be killed, and its exit
// status. Stopping a process that has exited returns its exit status.
func (p *Process) Stop(grace time.Duration) (killed bool, err error) {
	select {
	case <-p.done:
		return false, p.err
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false, p.err
	case <-t.C:
		_ = p.cmd.Process.Kill()
		<-p.done
		return true, p.err
	}
}
