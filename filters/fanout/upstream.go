package fanout

import (
	"context"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// upstream is one target of one call. Its goroutines (run, and send once
// the stream is open) talk to the merging goroutine only through the call's
// events channel and the ack channel.
type upstream struct {
	c      *fanCall
	member int
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	// queue carries request frames from the request reader to send. The
	// reader closes it when the client half-closes.
	queue chan mem.BufferSlice
	// gone is closed when the upstream takes no more request frames.
	gone chan struct{}
	// ack tells run that the merger is done with the last message, so
	// that each upstream has at most one message in the merger's hands.
	ack chan struct{}
	// recv is reused for every response message; the merger moves its
	// Data out before acking.
	recv rawcodec.Frame
	// sendFrame is reused for every request frame.
	sendFrame rawcodec.Frame

	// Merger state, touched only by the merging goroutine.
	header    grpcmd.MD
	gotHeader bool
	ended     bool
	took      time.Duration // from the start of the call to the upstream's end
	trailer   grpcmd.MD
	msgs      int
	held      mem.BufferSlice // unary: the response message
	heldBytes []byte          // unary: held, contiguous, for the merge
	failure   *status.Status  // non-nil: the upstream contributes an error item
}

type eventKind uint8

const (
	evHeader eventKind = iota
	evMessage
	evEnd
)

// event is an upstream's news for the merger. A message event hands
// u.recv.Data to the merger.
type event struct {
	u       *upstream
	kind    eventKind
	md      grpcmd.MD
	st      *status.Status
	trailer grpcmd.MD
}

// emit hands ev to the merger; false once the merger has stopped listening.
func (u *upstream) emit(ev event) bool {
	select {
	case u.c.events <- ev:
		return true
	case <-u.c.finished:
		return false
	}
}

// run opens the upstream stream and relays its answer to the merger.
func (u *upstream) run() {
	c := u.c
	defer c.wg.Done()
	cs, err := u.member0().NewStream(u.ctx, route.BidiDesc, c.call.Method, route.CallOptions(c.call)...)
	if err != nil {
		close(u.gone)
		u.drain()
		u.emit(event{u: u, kind: evEnd, st: status.Convert(err)})
		return
	}
	c.wg.Add(1)
	go u.send(cs)

	// nil means a trailers-only answer.
	if md, _ := cs.Header(); md != nil {
		if !u.emit(event{u: u, kind: evHeader, md: md}) {
			return
		}
	}
	for {
		err := cs.RecvMsg(&u.recv)
		if err != nil {
			st := status.Convert(err)
			if err == io.EOF {
				st = status.New(codes.OK, "")
			}
			u.emit(event{u: u, kind: evEnd, st: st, trailer: cs.Trailer()})
			return
		}
		if !u.emit(event{u: u, kind: evMessage}) {
			u.recv.Free()
			return
		}
		select {
		case <-u.ack:
		case <-c.finished:
			return
		}
	}
}

func (u *upstream) member0() grpc.ClientConnInterface { return u.c.set.members[u.member].Conn }

// send copies request frames from the queue to the upstream, and
// half-closes it when the client did.
func (u *upstream) send(cs grpc.ClientStream) {
	defer u.c.wg.Done()
	defer u.drain()
	defer close(u.gone)
	for {
		select {
		case data, ok := <-u.queue:
			if !ok {
				_ = cs.CloseSend()
				return
			}
			u.sendFrame.Data = data
			err := cs.SendMsg(&u.sendFrame)
			u.sendFrame.Free() // no-op unless grpc-go refused it before taking it
			if err != nil {
				// The upstream ended; run reports how.
				return
			}
		case <-u.ctx.Done():
			return
		}
	}
}

// drain frees request frames that were queued but will never be sent.
func (u *upstream) drain() {
	for {
		select {
		case data, ok := <-u.queue:
			if !ok {
				return
			}
			data.Free()
		default:
			return
		}
	}
}
