package server

import (
	"sync"

	"github.com/manifold-grpc/manifold/pipeline"
)

// generation is one handler the server has served, with the calls still
// using it, so that a replaced handler's resources outlive its last call.
type generation struct {
	h pipeline.Handler
	// counters: the server counts the calls' messages for h's filters
	// ([pipeline.TouchCounters]) or because it was told to.
	counters bool

	mu      sync.Mutex
	active  int
	retired bool
	idle    chan struct{} // closed once retired with no call left
}

func newGeneration(h pipeline.Handler, counters bool) *generation {
	if t, ok := h.(pipeline.Toucher); ok && t.Touches()&pipeline.TouchCounters != 0 {
		counters = true
	}
	return &generation{h: h, counters: counters, idle: make(chan struct{})}
}

// enter counts a new call in; false once the generation is retired.
func (g *generation) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.retired {
		return false
	}
	g.active++
	return true
}

func (g *generation) leave() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.active--
	if g.retired && g.active == 0 {
		close(g.idle)
	}
}

// retire stops new calls and returns a channel closed when the last call
// in flight has ended.
func (g *generation) retire() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.retired {
		g.retired = true
		if g.active == 0 {
			close(g.idle)
		}
	}
	return g.idle
}

// Swap makes h serve every new call from now on, as a config reload does.
// Calls in flight finish on the handler they started with; the returned
// channel is closed when the last of them has ended, so that the old
// handler's upstreams can be closed then.
func (s *Server) Swap(h pipeline.Handler) <-chan struct{} {
	old := s.gen.Swap(newGeneration(h, s.opts.counters))
	return old.retire()
}
