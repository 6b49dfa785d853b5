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
	// downFrame is reused for every message sendDirect sends the client:
	// SendMsg takes its Data, and nothing keeps the frame itself
	// (rawcodec.Frame's ownership rules).
	downFrame rawcodec.Frame

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
	// evSendFailed: the upstream sent a message to the client itself
	// (direct mode) and the client's stream refused it; the call is over.
	evSendFailed
)

// event is an upstream's news for the merger. A message event hands
// u.recv.Data to the merger.
type event struct {
	u       *upstream
	kind    eventKind
	md      grpcmd.MD
	st      *status.Status
	trailer grpcmd.MD
	err     error // evSendFailed: why sending to the client failed
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

// run opens the upstream stream and relays its answer to the merger. It
// runs on a worker of the terminal's pool, whose stack already has room
// for NewStream (package workers).
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
	if c.kind.ClientStreams() {
		c.wg.Add(1)
		go u.send(cs, nil)
	} else if next, more := u.sendRequest(cs); more {
		c.wg.Add(1)
		go u.send(cs, next)
	}

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
		if c.direct.Load() {
			if err := c.sendDirect(u); err != nil {
				u.emit(event{u: u, kind: evSendFailed, err: err})
				return
			}
			continue
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

// sendRequest forwards the request of a call whose client sends one
// message (unary, server-streaming) on run's own goroutine: such a member
// cannot answer before it has the request, so waiting for it here delays
// nothing. When the client's half-close has arrived too, as it normally
// has, no sender goroutine is needed; more reports that one is, to wait
// for the half-close or forward next and what follows (a client that sends
// more than one message anyway).
func (u *upstream) sendRequest(cs grpc.ClientStream) (next mem.BufferSlice, more bool) {
	select {
	case data, ok := <-u.queue:
		if !ok {
			_ = cs.CloseSend()
			u.sendDone()
			return nil, false
		}
		if err := u.forward(cs, data); err != nil {
			// The upstream ended; RecvMsg reports how.
			u.sendDone()
			return nil, false
		}
	case <-u.ctx.Done():
		u.sendDone()
		return nil, false
	}
	select {
	case data, ok := <-u.queue:
		if !ok {
			_ = cs.CloseSend()
			u.sendDone()
			return nil, false
		}
		return data, true
	default:
		return nil, true
	}
}

// forward sends one request frame to the upstream, handing it the frame's
// reference.
func (u *upstream) forward(cs grpc.ClientStream, data mem.BufferSlice) error {
	u.sendFrame.Data = data
	err := cs.SendMsg(&u.sendFrame)
	u.sendFrame.Free() // no-op unless grpc-go refused it before taking it
	return err
}

// sendDone marks the request side of u finished: no more frames are taken,
// and those queued are freed.
func (u *upstream) sendDone() {
	close(u.gone)
	u.drain()
}

// send copies request frames from the queue to the upstream, first the
// frame first if there is one, and half-closes the upstream when the client
// did. It runs on its own goroutine.
func (u *upstream) send(cs grpc.ClientStream, first mem.BufferSlice) {
	defer u.c.wg.Done()
	defer u.sendDone()
	if first != nil {
		if err := u.forward(cs, first); err != nil {
			return
		}
	}
	for {
		select {
		case data, ok := <-u.queue:
			if !ok {
				_ = cs.CloseSend()
				return
			}
			if err := u.forward(cs, data); err != nil {
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

// sendDirect sends u's received stream message to the client from u's own
// goroutine, tagged like the merger would tag it. Once the merged headers
// are out and the policy keeps every message (all, without fail_fast), the
// merger has nothing to decide per message: going through it would only add
// two goroutine hand-offs to every message. Each upstream still sends its
// own messages in order and one at a time, and sendMu keeps the client's
// stream to one sender at a time.
func (c *fanCall) sendDirect(u *upstream) (err error) {
	// A panic in a stream wrapper of an around filter would otherwise take
	// down the process (the server recovers only the handler's goroutine);
	// it ends this call with INTERNAL instead.
	defer func() {
		if r := recover(); r != nil {
			err = status.Errorf(codes.Internal, "manifold: panic while sending a response: %v", r)
		}
	}()
	// The payload is not copied: the member's metadata field is one more
	// buffer after it.
	u.downFrame.Data = append(u.recv.Data, c.set.mdBufs[u.member])
	u.recv.Data = nil
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	err = c.down.SendMsg(&u.downFrame)
	u.downFrame.Free() // no-op unless the message was refused before grpc-go took it
	return err
}
