package workers

import (
	"sync/atomic"
	"time"

	"github.com/manifold-grpc/manifold/internal/stack"
)

// idleGrace is how long the pool may hand out no task before its parked
// workers exit. Under load a task comes every few microseconds; a pool
// that releases its workers at the first pause (the first version released
// them whenever no task was running, about 80 times a second in the load
// benchmark's fan-out) starts most tasks on a new goroutine. It is short
// so that a process, or a test's leak check, that stops calling sees the
// workers gone soon after.
const idleGrace = 50 * time.Millisecond

// Pool runs tasks on parked workers, or on new ones when none is parked.
//
// When a task ends, its worker parks for the next one, unless maxIdle
// workers are parked already. When the pool has handed out no task for
// between one and two idleGrace, every parked worker exits. A pool that is
// not in use therefore holds no goroutine and needs no Close: a server that
// stops serving leaves none behind. A long task does not keep the parked
// workers alive.
//
// A Pool is safe for concurrent use. The zero value is not usable; call
// [New].
type Pool struct {
	maxIdle int32
	// work hands a task to a parked worker, or nil to make it exit. It is
	// unbuffered: a send succeeds only into a worker waiting on it.
	work chan func()

	parked atomic.Int32 // counted from before a worker waits until it has a task
	used   atomic.Bool  // Go ran since release last looked
	armed  atomic.Bool  // the idle timer is due to run release
	idle   *time.Timer
	grace  time.Duration // idleGrace; tests lengthen it
}

// New returns a pool that keeps at most maxIdle workers parked.
func New(maxIdle int) *Pool {
	p := &Pool{maxIdle: int32(min(maxIdle, 1<<30)), work: make(chan func()), grace: idleGrace}
	p.idle = time.AfterFunc(time.Hour, p.release)
	p.idle.Stop()
	return p
}

// Go runs task on a worker. It never waits for one: with none parked, it
// starts a new one. Task must not panic; like a plain goroutine's, a panic
// ends the process.
func (p *Pool) Go(task func()) {
	if !p.used.Load() { // a load, not a store, on the hot path: the flag is shared
		p.used.Store(true)
	}
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

// next waits for another task, or reports nil when the worker should exit
// instead.
func (p *Pool) next() func() {
	if p.parked.Add(1) > p.maxIdle {
		p.parked.Add(-1)
		return nil
	}
	if p.armed.CompareAndSwap(false, true) {
		p.idle.Reset(p.grace)
	}
	task := park(p.work)
	p.parked.Add(-1)
	return task
}

// parkReserve is the stack a waiting worker keeps in use: over a quarter
// of the 16 KiB stack that [stack.Grow] gives it, so that the garbage
// collector leaves the stack whole.
const parkReserve = 5 << 10

// never is never true; it keeps park's reserve from being compiled away.
var never bool

// park waits for a task with parkReserve of stack in use.
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

// release runs idleGrace after it was armed. If no task was handed out
// since it last ran, it makes the parked workers exit; it stays armed while
// any are parked.
func (p *Pool) release() {
	if p.used.Swap(false) {
		p.idle.Reset(p.grace)
		return
	}
	for p.parked.Load() > 0 {
		select {
		case p.work <- nil:
		default:
			// A worker is counted but not waiting yet (or is taking a
			// task): look again later.
			p.idle.Reset(p.grace)
			return
		}
	}
	p.armed.Store(false)
	// A worker that was counted after the loop found armed set and did not
	// arm the timer: arm it for that worker.
	if p.parked.Load() > 0 && p.armed.CompareAndSwap(false, true) {
		p.idle.Reset(p.grace)
	}
}
