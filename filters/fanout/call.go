package fanout

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// fanCall is one fanned-out call: a request reader goroutine, two
// goroutines per upstream, and the merger on the handler's goroutine.
type fanCall struct {
	t    *Terminal
	set  *memberSet // the members this call acquired
	call *pipeline.Call
	down pipeline.ServerStream
	kind methodkind.Kind

	ctx    context.Context
	cancel context.CancelFunc
	ups    []*upstream
	start  time.Time

	events   chan event
	finished chan struct{} // closed when the merger stops listening
	wg       sync.WaitGroup

	reqMu  sync.Mutex
	reqErr error // why the request side ended the call, if it did

	// direct, once set, lets each upstream send its stream messages to
	// the client itself instead of through the merger (see sendDirect);
	// sendMu serializes every send on down from then on.
	direct atomic.Bool
	sendMu sync.Mutex
}

func newFanCall(t *Terminal, set *memberSet, call *pipeline.Call, down pipeline.ServerStream, targets []int, kind methodkind.Kind) *fanCall {
	ctx, cancel := context.WithCancel(down.Context())
	c := &fanCall{
		t: t, set: set, call: call, down: down, kind: kind,
		ctx: ctx, cancel: cancel,
		events:   make(chan event),
		finished: make(chan struct{}),
	}
	out := grpcmd.NewOutgoingContext(ctx, call.Header)
	deadline, hasDeadline := t.upstreamDeadline(ctx)
	// A client that sends one message needs no more room per member: the
	// queue holds it, and back-pressure handles a client that sends more.
	queueSize := t.cfg.QueueSize
	if !kind.ClientStreams() {
		queueSize = 1
	}
	for _, m := range targets {
		u := &upstream{
			c: c, member: m, name: set.members[m].Name,
			queue: make(chan mem.BufferSlice, queueSize),
			gone:  make(chan struct{}),
			ack:   make(chan struct{}, 1),
		}
		uctx, ucancel := context.WithCancel(pipeline.ContextWithUpstream(out, pipeline.Upstream{Cluster: t.cfg.Name, Member: u.name}))
		if hasDeadline {
			uctx, ucancel = withDeadline(uctx, ucancel, deadline)
		}
		if t.cfg.UpstreamTimeout > 0 {
			uctx, ucancel = withDeadline(uctx, ucancel, time.Now().Add(t.cfg.UpstreamTimeout))
		}
		u.ctx, u.cancel = uctx, ucancel
		c.ups = append(c.ups, u)
	}
	return c
}

// withDeadline narrows ctx, chaining the cancel functions.
func withDeadline(ctx context.Context, cancel context.CancelFunc, d time.Time) (context.Context, context.CancelFunc) {
	ctx, c2 := context.WithDeadline(ctx, d)
	return ctx, func() { c2(); cancel() }
}

// run starts every upstream at once, merges, and leaves nothing running but
// the request reader (which grpc-go unblocks when the call's stream closes).
func (c *fanCall) run() error {
	c.start = time.Now()
	c.t.stats.calls.Add(1)
	c.t.stats.upstreamCalls.Add(int64(len(c.ups)))
	c.wg.Add(len(c.ups))
	for _, u := range c.ups {
		c.t.workers.Go(u.run)
	}
	go c.readRequests()

	var err error
	if c.kind.ServerStreams() {
		err = c.mergeStream()
	} else {
		err = c.mergeUnary()
	}

	// Stop everything and wait: no upstream goroutine or stream outlives the
	// call.
	for _, u := range c.ups {
		u.cancel()
	}
	close(c.finished)
	c.wg.Wait()
	took := time.Since(c.start)
	for _, u := range c.ups {
		u.held.Free()
		u.held = nil
		code, d := codes.Canceled, took // not needed by the policy, or the call ended first
		if u.ended {
			code, d = codes.OK, u.took
			if u.failure != nil {
				code = u.failure.Code()
			}
		}
		pipeline.RecordUpstream(c.call, pipeline.UpstreamResult{
			Upstream: pipeline.Upstream{Cluster: c.t.cfg.Name, Member: u.name},
			Code:     code,
			Duration: d,
		})
	}
	c.cancel()
	if reqErr := c.requestError(); reqErr != nil {
		return reqErr
	}
	return err
}

// readRequests broadcasts every request frame to every live upstream. Each
// upstream's queue is bounded: a slow upstream delays nobody until its
// queue is full, then the client waits.
func (c *fanCall) readRequests() {
	// A panic in a stream wrapper of an around filter would otherwise take
	// down the process; it ends this call with INTERNAL instead.
	defer func() {
		if r := recover(); r != nil {
			c.fail(status.Errorf(codes.Internal, "manifold: panic while reading the request: %v", r))
		}
	}()
	var f rawcodec.Frame
	for {
		err := c.down.RecvMsg(&f)
		if err == io.EOF {
			for _, u := range c.ups {
				close(u.queue)
			}
			return
		}
		if err != nil {
			c.fail(err)
			return
		}
		for _, u := range c.ups {
			select {
			case <-u.gone:
				continue
			default:
			}
			f.Data.Ref()
			select {
			case u.queue <- f.Data:
			case <-u.gone:
				f.Data.Free()
			case <-c.ctx.Done():
				f.Data.Free()
			}
		}
		f.Free()
		if c.ctx.Err() != nil {
			return
		}
	}
}

// fail records why the request side ended the call and cancels every
// upstream.
func (c *fanCall) fail(err error) {
	c.reqMu.Lock()
	if c.reqErr == nil {
		c.reqErr = err
	}
	c.reqMu.Unlock()
	c.cancel()
}

func (c *fanCall) requestError() error {
	c.reqMu.Lock()
	defer c.reqMu.Unlock()
	return c.reqErr
}

// end records an upstream's end and decides whether it contributes an error
// item. It reports whether the upstream succeeded.
func (c *fanCall) end(u *upstream, ev event) bool {
	u.ended = true
	u.took = time.Since(c.start)
	u.trailer = ev.trailer
	u.cancel()
	switch {
	case u.failure != nil:
		// Already judged (a unary upstream that sent two messages).
	case ev.st.Code() != codes.OK:
		u.failure = ev.st
	case !c.kind.ServerStreams() && u.msgs == 0:
		u.failure = status.New(codes.Internal, "fanout: upstream ended a unary call with OK and no response message")
	}
	if u.failure != nil {
		c.t.stats.upstreamErrors.Add(1)
		u.held.Free()
		u.held = nil
		return false
	}
	return true
}

// failFast returns the status that ends the call when fail_fast is on and
// u failed: the upstream's, naming it, with the trailers of the upstreams
// that ended so far.
func (c *fanCall) failFast(u *upstream) error {
	if tr := c.mergedTrailer(); len(tr) > 0 {
		c.down.SetTrailer(tr)
	}
	p := u.failure.Proto()
	p.Message = u.name + ": " + p.Message
	return status.FromProto(p).Err()
}

// errorMetadata is the metadata of u's error item.
func (u *upstream) errorMetadata() metadata.Metadata {
	return metadata.Metadata{Hostname: u.name, Error: u.failure.Err().Error(), Status: u.failure.Proto()}
}

// mergedTrailer joins the trailers of the upstreams that ended.
func (c *fanCall) mergedTrailer() grpcmd.MD {
	var all grpcmd.MD
	for _, u := range c.ups {
		if len(u.trailer) > 0 {
			all = grpcmd.Join(all, pipeline.ResponseHeader(u.trailer))
		}
	}
	return all
}

// headerUnion joins the headers received so far.
func (c *fanCall) headerUnion() grpcmd.MD {
	all := grpcmd.MD{}
	for _, u := range c.ups {
		if len(u.header) > 0 {
			all = grpcmd.Join(all, pipeline.ResponseHeader(u.header))
		}
	}
	return all
}

// quorumError is the status of a call whose quorum cannot be reached.
func (c *fanCall) quorumError(succeeded int) error {
	return status.Errorf(codes.Unavailable, "fanout: quorum of %d not reached: %d of %d targets succeeded", c.t.cfg.Policy.Quorum, succeeded, len(c.ups))
}
