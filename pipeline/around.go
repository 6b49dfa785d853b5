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
	defer recoverFilter(&err, a.name, "Around", a.log)
	return a.fn(call, stream, a.next)
}
