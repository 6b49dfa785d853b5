package child_test

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/manifold-grpc/manifold/bench/internal/child"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitFor polls cond until it holds; the timeout only guards against a hang.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOutputAndExit runs a shell that writes to both streams and exits
// with 3: every line reaches the callback in order, the tail keeps the
// last TailLines, and Alive then reports the exit with the tail.
func TestOutputAndExit(t *testing.T) {
	t.Parallel()
	const n = 100
	var (
		mu    sync.Mutex
		lines []string
	)
	script := "for i in $(seq 1 " + strconv.Itoa(n) + "); do if [ $((i % 2)) = 0 ]; then echo $i >&2; else echo $i; fi; done; exit 3"
	p, err := child.Start("counter", exec.Command("sh", "-c", script), func(line string) {
		mu.Lock()
		lines = append(lines, line)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.Pid <= 0 || p.Name != "counter" {
		t.Errorf("Pid %d, Name %q", p.Pid, p.Name)
	}
	<-p.Done()
	waitFor(t, "the last line", func() bool { mu.Lock(); defer mu.Unlock(); return len(lines) == n })

	var want []string
	for i := 1; i <= n; i++ {
		want = append(want, strconv.Itoa(i))
	}
	mu.Lock()
	if got := strings.Join(lines, ","); got != strings.Join(want, ",") {
		t.Errorf("lines passed to the callback = %s, want 1 to %d in order", got, n)
	}
	mu.Unlock()
	wantTail := strings.Join(want[n-child.TailLines:], "\n")
	if got := p.Output(); got != wantTail {
		t.Errorf("Output() = %q, want the last %d lines %q", got, child.TailLines, wantTail)
	}
	var ee *exec.ExitError
	if err := p.Err(); !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Errorf("Err() = %v, want exit status 3", err)
	}
	err = p.Alive()
	if err == nil || !strings.HasPrefix(err.Error(), "counter exited (exit status 3):\n") || !strings.HasSuffix(err.Error(), wantTail) {
		t.Errorf("Alive() = %v, want the name, exit status and tail", err)
	}
	if killed, err := p.Stop(time.Second); killed || err != p.Err() {
		t.Errorf("Stop of an exited process = %v, %v; want false, its exit status", killed, err)
	}
}

// TestStop checks both ways Stop ends a process: one that exits on
// SIGTERM within the grace period, and one that ignores it and is killed.
func TestStop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		script     string
		wantKilled bool
		wantSignal syscall.Signal
	}{
		{"exits on SIGTERM", "echo ready; exec sleep 60", false, syscall.SIGTERM},
		{"ignores SIGTERM", "trap '' TERM; echo ready; while :; do sleep 0.05; done", true, syscall.SIGKILL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ready := make(chan struct{}, 1)
			p, err := child.Start(tt.name, exec.Command("sh", "-c", tt.script), func(line string) {
				if line == "ready" {
					ready <- struct{}{}
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-ready:
			case <-time.After(20 * time.Second):
				t.Fatal("the shell never said ready")
			}
			if err := p.Alive(); err != nil {
				t.Fatalf("Alive() of a running process = %v", err)
			}
			killed, err := p.Stop(500 * time.Millisecond)
			if killed != tt.wantKilled {
				t.Errorf("Stop() killed = %v, want %v", killed, tt.wantKilled)
			}
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("Stop() error = %v, want an exit error", err)
			}
			if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != tt.wantSignal {
				t.Errorf("exit status %v, want ended by %v", ee, tt.wantSignal)
			}
			if err := p.Alive(); err == nil {
				t.Error("Alive() after Stop = nil")
			}
		})
	}
}

// TestStartFails checks that a missing binary is reported with the name.
func TestStartFails(t *testing.T) {
	t.Parallel()
	_, err := child.Start("ghost", exec.Command("/nonexistent/bench-child"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "ghost: ") {
		t.Errorf("Start() = %v, want an error naming the process", err)
	}
}

func Example() {
	p, err := child.Start("greeter", exec.Command("sh", "-c", "echo hello; exit 2"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	<-p.Done()
	for p.Output() == "" { // the output may arrive after the exit
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println(p.Alive())
	// Output:
	// greeter exited (exit status 2):
	// hello
}
