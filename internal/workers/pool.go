package workers

import (
	"sync/atomic"
	"time"

	"github.com/manifold-grpc/manifold/internal/stack"
)

// parkReserve is the stack a parked worker keeps in use: over a quarter
// of the 16 KiB stack that [stack.Grow] gives it, so the garbage collector
// leaves the stack whole. A worker whose task grew it to 32 KiB gives the
// second half back at the next collection and keeps 16 KiB.
const parkReserve = 5 << 10

// idleGrace is how long no task may run before the parked workers exit.
// Under load the count of running tasks touches zero many times a second
// (the load benchmark's fan-out: about 80 times), each time for well under
// a millisecond; releasing the workers at every touch made most tasks
// start a new one. It is short so that a process, or a test's leak check,
// that stops calling sees the workers gone soon after.
const idleGrace = 50 * time.Millisecond

// Pool runs tasks on parked workers, or on new ones when none is parked.
//
// When a task ends, its worker parks for the next one; when no task has
// run for idleGrace, every parked worker exits. A pool that is not in use
// therefore holds no goroutine and needs no Close: a server that stops
// serving leaves none behind. At most maxIdle workers park at a time;
// past that, a worker exits when its task ends.
//
// A Pool is safe for concurrent use. The zero value is not usable; call
// [New].
type Pool struct {
	maxIdle int32
	// work hands a task to a parked worker, or nil to make it exit. It is
	// unbuffered: a send succeeds only into a parked worker.
	work chan func()

	running atomic.Int64 // tasks handed out and not yet returned
	parked  atomic.Int32
	idle    *time.Timer // calls release idleGrace after running fell to zero
}

// New returns a pool that keeps at most maxIdle workers parked.
func New(maxIdle int) *Pool {
	p := &Pool{maxIdle: int32(maxIdle), work: make(chan func())}
	p.idle = time.AfterFunc(time.Hour, p.release)
	p.idle.Stop()
	return p
}

// Go runs task on a worker. It never waits for one: with none parked, it
// starts a new one. Task must not panic; like a plain goroutine's, a panic
// ends the process.
func (p *Pool) Go(task func()) {
	p.running.Add(1)
	select {
	case p.work <- task:
	default:
		go p.worker(task)
	}
}

// worker runs task, then the tasks it is handed while parked.
func (p *Pool) worker(task func()) {
	stack.Grow()
	for task != nil {
		task()
		task = p.next()
	}
}

// next ends a task and waits for another, or reports nil when the worker
// should exit instead.
func (p *Pool) next() func() {
	if p.running.Add(-1) == 0 {
		p.idle.Reset(idleGrace)
	}
	if p.parked.Add(1) > p.maxIdle {
		p.parked.Add(-1)
		return nil
	}
	task := park(p.work)
	p.parked.Add(-1)
	return task
}

// release makes the parked workers exit if no task runs. A worker counted
// as parked that is not yet waiting cannot take its nil now; release then
// tries again after another idleGrace.
func (p *Pool) release() {
	for p.running.Load() == 0 && p.parked.Load() > 0 {
		select {
		case p.work <- nil:
		default:
			p.idle.Reset(idleGrace)
			return
		}
	}
}

// never is never true; it keeps park's reserve from being compiled away.
var never bool

// park waits for a task, with parkReserve of stack in use.
//
//go:noinline
func park(work <-chan func()) func() {
	if never {
		var reserve [parkReserve]byte
		keep(reserve[:])
	}
	return <-work
}

//go:noinline
func keep([]byte) {}
