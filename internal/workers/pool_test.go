package workers

import (
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// holdRunning starts a task that runs until the returned function is
// called, so that the pool's workers park instead of being released.
func holdRunning(p *Pool) (release func()) {
	done := make(chan struct{})
	p.Go(func() { <-done })
	return func() { close(done) }
}

// waitParked waits until n workers are parked.
func waitParked(t *testing.T, p *Pool, n int32) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.parked.Load() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers parked, want %d", p.parked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestGoRunsEveryTask(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(8)
	const callers, tasks = 16, 500
	var ran atomic.Int64
	var wg sync.WaitGroup
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range tasks {
				var one sync.WaitGroup
				one.Add(3)
				for range 3 {
					p.Go(func() { ran.Add(1); one.Done() })
				}
				one.Wait()
			}
		}()
	}
	wg.Wait()
	if got, want := ran.Load(), int64(callers*tasks*3); got != want {
		t.Fatalf("%d tasks ran, want %d", got, want)
	}
	// VerifyNone: the parked workers are gone idleGrace after the last task.
}

func TestParkedWorkerRunsTheNextTask(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(4)
	release := holdRunning(p)
	defer release()

	where := make(chan string, 1)
	task := func() {
		buf := make([]byte, 64)
		buf = buf[:runtime.Stack(buf, false)]
		id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ") // "goroutine 42 [running]:"
		where <- id
	}
	p.Go(task)
	first := <-where
	waitParked(t, p, 1)
	p.Go(task)
	if second := <-where; second != first {
		t.Fatalf("second task ran on %q, want the parked worker %q", second, first)
	}
	waitParked(t, p, 1)
}

func TestParkedWorkersBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(2)
	release := holdRunning(p)
	defer release()

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 5 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-start })
	}
	close(start)
	wg.Wait()
	waitParked(t, p, 2)
	time.Sleep(10 * time.Millisecond) // a third would have parked by now
	if n := p.parked.Load(); n != 2 {
		t.Fatalf("%d workers parked, want the bound, 2", n)
	}
}

func TestWorkersExitWhenIdle(t *testing.T) {
	p := New(4)
	release := holdRunning(p)
	var wg sync.WaitGroup
	wg.Add(3)
	for range 3 {
		p.Go(wg.Done)
	}
	wg.Wait()
	waitParked(t, p, 3)

	// While a task runs, parked workers stay, however long it runs.
	time.Sleep(3 * idleGrace)
	if n := p.parked.Load(); n != 3 {
		t.Fatalf("%d workers parked while a task runs, want 3", n)
	}
	release()
	waitParked(t, p, 0)
	goleak.VerifyNone(t)
}

// TestParkedStackKept checks the runtime detail the pool relies on: a
// parked worker's grown stack survives garbage collections. It fails if
// park keeps too little stack in use (parkReserve), or if a Go release
// changes how the collector shrinks stacks.
func TestParkedStackKept(t *testing.T) {
	defer goleak.VerifyNone(t)
	const workers = 200
	p := New(workers)
	release := holdRunning(p)
	defer release()

	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range workers {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-start })
	}
	close(start)
	wg.Wait()
	waitParked(t, p, workers)
	for range 3 {
		runtime.GC() // each collection halves the stacks it may shrink
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perWorker := (int64(after.StackInuse) - int64(before.StackInuse)) / workers
	if perWorker < 14<<10 {
		t.Fatalf("a parked worker holds %d bytes of stack after 3 collections, want its grown 16 KiB", perWorker)
	}
}
