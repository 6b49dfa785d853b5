package pipeline

import "log/slog"

// aroundStage runs one filter's [AroundHook] around the rest of the chain.
type aroundStage struct {
	name string
	fn   func(call *Call, stream ServerStream, next Handler) error
	next Handler
	log  *slog.Logger
}

func (a *aroundStage) Serve(call *Call, stream ServerStream) (err error) {
	next := &guardedNext{next: a.next}
	defer func() {
		if next.panicked {
			// The panic came from below; it is not this filter's. Let it
			// go on to whoever recovers it (the server logs it once).
			return
		}
		if r := recover(); r != nil {
			err = filterPanicked(r, a.name, "Around", a.log)
		}
	}()
	return a.fn(call, stream, next)
}

// guardedNext records whether the rest of the chain panicked, so that an
// around filter is not blamed for a panic it only passed through.
type guardedNext struct {
	next     Handler
	panicked bool
}

func (g *guardedNext) Serve(call *Call, stream ServerStream) error {
	done := false
	defer func() {
		if !done {
			g.panicked = true
		}
	}()
	err := g.next.Serve(call, stream)
	done = true
	return err
}
