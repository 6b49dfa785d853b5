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

// waitWaiting waits until n workers wait for a task: counted as parked
// and blocked on the work channel.
func waitWaiting(t *testing.T, p *Pool, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		waiting := 0
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "[chan receive") && strings.Contains(g, "workers.(*Pool).next") && strings.Contains(g, "workers.park") {
				waiting++
			}
		}
		if waiting == n && p.parked.Load() == int32(n) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d workers wait (%d counted), want %d", waiting, p.parked.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// dismiss makes the parked workers of a pool whose grace never ends exit.
// They are all waiting: the tests end with waitWaiting.
func dismiss(p *Pool) {
	for range p.parked.Load() {
		p.work <- nil
	}
}

// goroutineID is the id of the calling goroutine, from its stack header
// ("goroutine 42 [running]:").
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	id, _, _ := strings.Cut(strings.TrimPrefix(string(buf), "goroutine "), " ")
	return id
}

func TestGoRunsEveryTask(t *testing.T) {
	defer goleak.VerifyNone(t) // the parked workers exit after the last task
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
}

func TestParkedWorkerRunsTheNextTask(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(4)
	p.grace = time.Hour // the worker must not leave while the test is slow
	defer dismiss(p)

	where := make(chan string, 1)
	task := func() { where <- goroutineID() }
	p.Go(task)
	first := <-where
	waitWaiting(t, p, 1)
	p.Go(task)
	if second := <-where; second != first {
		t.Fatalf("second task ran on goroutine %s, want the parked worker %s", second, first)
	}
	waitWaiting(t, p, 1)
}

func TestParkedWorkersBounded(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(2)
	p.grace = time.Hour
	defer dismiss(p)

	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 5 {
		wg.Add(1)
		p.Go(func() { defer wg.Done(); <-start })
	}
	close(start)
	wg.Wait()
	waitWaiting(t, p, 2)
	time.Sleep(10 * time.Millisecond) // a third would have parked by now
	if n := p.parked.Load(); n != 2 {
		t.Fatalf("%d workers parked, want the bound, 2", n)
	}
}

// TestWorkersExitWhenNoTaskComes checks that parked workers leave once no
// task has come for a while, even while a long task still runs (a stream
// that lasts hours must not keep a burst's workers).
func TestWorkersExitWhenNoTaskComes(t *testing.T) {
	p := New(8)
	long := make(chan struct{})
	p.Go(func() { <-long })
	var wg sync.WaitGroup
	wg.Add(3)
	for range 3 {
		p.Go(wg.Done)
	}
	wg.Wait()
	waitWaiting(t, p, 3)

	deadline := time.Now().Add(5 * time.Second)
	for p.parked.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still parked while no task came", p.parked.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(long)
	goleak.VerifyNone(t)
}

// TestWorkersStayWhileTasksCome checks the other side: while tasks keep
// coming, a parked worker outlives many grace periods.
func TestWorkersStayWhileTasksCome(t *testing.T) {
	defer goleak.VerifyNone(t)
	p := New(1)
	ids := map[string]bool{}
	where := make(chan string, 1)
	for range 25 { // 25 tasks about 10 ms apart: 5 grace periods
		p.Go(func() { where <- goroutineID() })
		ids[<-where] = true
		waitWaiting(t, p, 1)
		time.Sleep(idleGrace / 5)
	}
	if len(ids) != 1 {
		t.Fatalf("25 tasks %v apart ran on %d goroutines, want 1 worker", idleGrace/5, len(ids))
	}
}

// TestParkedStackKept checks the runtime detail the pool relies on: a
// waiting worker's grown stack survives garbage collections. It fails if
// park keeps too little stack in use (parkReserve), or if a Go release
// changes how the collector shrinks stacks.
func TestParkedStackKept(t *testing.T) {
	defer goleak.VerifyNone(t)
	const workers = 200
	p := New(workers)
	p.grace = time.Hour
	defer dismiss(p)

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
	waitWaiting(t, p, workers)
	for range 3 {
		runtime.GC() // each collection halves the stacks it may shrink
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	perWorker := (int64(after.StackInuse) - int64(before.StackInuse)) / workers
	if perWorker < 14<<10 {
		t.Fatalf("a waiting worker holds %d bytes of stack after 3 collections, want its grown 16 KiB", perWorker)
	}
}
