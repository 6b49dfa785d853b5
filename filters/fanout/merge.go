package fanout

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// mergeUnary answers a unary or client-streaming call: it waits for the
// targets the policy needs, then sends one message holding every included
// target's items, in target order.
func (c *fanCall) mergeUnary() error {
	policy := c.t.cfg.Policy
	remaining, succeeded, heldBytes := len(c.ups), 0, 0
	var winner *upstream
	for remaining > 0 {
		ev := <-c.events
		u := ev.u
		switch ev.kind {
		case evHeader:
			u.header, u.gotHeader = ev.md, true
		case evMessage:
			data := u.recv.Data
			u.recv.Data = nil
			u.msgs++
			if u.msgs == 1 {
				u.held = data
				// Cap the memory the held answers take, not only the merged
				// message: each answer may be as large as a member's
				// message limit.
				heldBytes += data.Len()
				if heldBytes > c.t.cfg.MaxResponseSize {
					u.ack <- struct{}{}
					return status.Errorf(codes.ResourceExhausted, "fanout: the members' answers exceed the limit of %d bytes for a merged response", c.t.cfg.MaxResponseSize)
				}
			} else {
				data.Free()
				if u.failure == nil {
					u.failure = status.Newf(codes.Internal, "fanout: upstream sent %d messages to a unary call", u.msgs)
					u.cancel()
				}
			}
			u.ack <- struct{}{}
		case evEnd:
			remaining--
			ok := c.end(u, ev)
			if !ok && c.t.cfg.FailFast {
				return c.failFast(u)
			}
			if ok {
				succeeded++
				if policy.Mode == First && winner == nil {
					winner = u
				}
			}
		}
		if (policy.Mode == First && winner != nil) || (policy.Mode == Quorum && succeeded >= policy.Quorum) {
			break
		}
		if policy.Mode == Quorum && succeeded+remaining < policy.Quorum {
			break
		}
	}
	if err := c.ctx.Err(); err != nil && c.down.Context().Err() != nil {
		return status.FromContextError(c.down.Context().Err()).Err()
	}
	if policy.Mode == Quorum && succeeded < policy.Quorum {
		return c.quorumError(succeeded)
	}

	// The targets in the answer: the winner alone under first (unless all
	// failed), otherwise every target that ended.
	include := func(u *upstream) bool {
		if winner != nil {
			return u == winner
		}
		return u.ended
	}
	layout := c.t.cfg.Layout
	size := 0
	for _, u := range c.ups {
		if !include(u) {
			continue
		}
		if u.failure == nil {
			u.heldBytes = u.held.Materialize()
			n, err := metadata.EntriesSize(u.heldBytes, metadata.Metadata{Hostname: u.name}, layout)
			if err == nil {
				size += n
				continue
			}
			u.failure = status.Newf(codes.Internal, "fanout: upstream answered a malformed message: %v", err)
			u.held.Free()
			u.held = nil
			c.t.stats.upstreamErrors.Add(1)
			if c.t.cfg.FailFast {
				return c.failFast(u)
			}
		}
		size += metadata.ErrorEntrySize(u.errorMetadata(), layout)
	}
	if size > c.t.cfg.MaxResponseSize {
		return status.Errorf(codes.ResourceExhausted, "fanout: merged response of %d bytes exceeds the limit of %d", size, c.t.cfg.MaxResponseSize)
	}
	buf := make([]byte, 0, size)
	for _, u := range c.ups {
		if !include(u) {
			continue
		}
		if u.failure != nil {
			buf = metadata.AppendErrorEntry(buf, u.errorMetadata(), layout)
			continue
		}
		var err error
		if buf, err = metadata.AppendEntries(buf, u.heldBytes, metadata.Metadata{Hostname: u.name}, layout); err != nil {
			return status.Errorf(codes.Internal, "fanout: %v", err) // EntriesSize accepted it: cannot happen
		}
	}
	if err := c.down.SendHeader(c.headerUnion()); err != nil {
		return err
	}
	if err := c.down.SendMsg(rawcodec.FromBytes(buf)); err != nil {
		return err
	}
	if tr := c.mergedTrailer(); len(tr) > 0 {
		c.down.SetTrailer(tr)
	}
	return nil
}

// pendingMsg is a response message waiting for the merged headers. ack is
// false for error items, which no upstream waits on.
type pendingMsg struct {
	u    *upstream
	data mem.BufferSlice
	ack  bool
}

// mergeStream answers a server-streaming or bidi call: messages of all
// targets interleaved as they arrive, each tagged with its target, one
// error message per failed target.
func (c *fanCall) mergeStream() error {
	policy := c.t.cfg.Policy
	remaining, succeeded := len(c.ups), 0
	var (
		winner     *upstream
		headerSent bool
		pending    []pendingMsg
		timer      *time.Timer
		timeout    <-chan time.Time
		held       []*upstream // first: failures held back until nobody wins
	)
	freePending := func() {
		for _, p := range pending {
			p.data.Free()
			if p.ack {
				p.u.ack <- struct{}{}
			}
		}
		pending = nil
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		freePending()
	}()
	// flush sends the merged headers and every pending message.
	//
	// Once the headers are out and the policy keeps every message, the
	// upstreams send their messages themselves (sendDirect); the merger
	// then sends only error items, under the same lock.
	directOK := policy.Mode == All && !c.t.cfg.FailFast
	flush := func() error {
		headerSent = true
		if timer != nil {
			timer.Stop()
			timeout = nil
		}
		c.sendMu.Lock()
		defer c.sendMu.Unlock()
		if err := c.down.SendHeader(c.headerUnion()); err != nil {
			return err
		}
		for len(pending) > 0 {
			p := pending[0]
			pending = pending[1:]
			err := c.down.SendMsg(&rawcodec.Frame{Data: p.data})
			if p.ack {
				p.u.ack <- struct{}{}
			}
			if err != nil {
				return err
			}
		}
		if directOK {
			c.direct.Store(true)
		}
		return nil
	}
	// ready: every target has sent headers or ended.
	ready := func() bool {
		for _, u := range c.ups {
			if !u.gotHeader && !u.ended {
				return false
			}
		}
		return true
	}
	// deliver sends a message, or holds it until the headers are out.
	deliver := func(p pendingMsg) error {
		if headerSent {
			c.sendMu.Lock()
			err := c.down.SendMsg(&rawcodec.Frame{Data: p.data})
			c.sendMu.Unlock()
			if p.ack {
				p.u.ack <- struct{}{}
			}
			return err
		}
		pending = append(pending, p)
		if ready() {
			return flush()
		}
		if timer == nil {
			timer = time.NewTimer(c.t.cfg.HeaderWait)
			timeout = timer.C
		}
		return nil
	}
	errorItem := func(u *upstream) pendingMsg {
		b := metadata.AppendItem(nil, nil, u.errorMetadata(), c.t.cfg.Layout)
		return pendingMsg{u: u, data: mem.BufferSlice{mem.SliceBuffer(b)}}
	}

	for remaining > 0 {
		var ev event
		select {
		case ev = <-c.events:
		case <-timeout:
			if err := flush(); err != nil {
				return err
			}
			continue
		}
		u := ev.u
		switch ev.kind {
		case evSendFailed:
			return ev.err
		case evHeader:
			if headerSent {
				c.t.stats.lateHeaders.Add(1)
				continue
			}
			u.header, u.gotHeader = ev.md, true
			if len(pending) > 0 && ready() {
				if err := flush(); err != nil {
					return err
				}
			}
		case evMessage:
			data := u.recv.Data
			u.recv.Data = nil
			u.msgs++
			if policy.Mode == First {
				if winner == nil {
					winner = u
					for _, o := range c.ups {
						if o != u {
							o.cancel()
						}
					}
				}
				if u != winner {
					data.Free()
					u.ack <- struct{}{}
					continue
				}
			}
			// The payload is not copied: the member's metadata field is
			// one more buffer after it.
			data = append(data, c.set.mdBufs[u.member])
			if err := deliver(pendingMsg{u: u, data: data, ack: true}); err != nil {
				return err
			}
		case evEnd:
			remaining--
			ok := c.end(u, ev)
			if ok {
				succeeded++
			} else {
				switch {
				case policy.Mode == First && winner != nil && u != winner:
					// A hedge that lost, cancelled by the policy: not a
					// failure, whatever fail_fast says.
				case c.t.cfg.FailFast:
					return c.failFast(u)
				case policy.Mode == First && winner == nil:
					held = append(held, u)
				default:
					if err := deliver(errorItem(u)); err != nil {
						return err
					}
				}
			}
			if len(pending) > 0 && ready() {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if policy.Mode == Quorum && (succeeded >= policy.Quorum || succeeded+remaining < policy.Quorum) {
			break
		}
		if policy.Mode == First && winner != nil && winner.ended {
			break
		}
	}
	if policy.Mode == First && winner == nil {
		// Nobody won: report every failure.
		for _, u := range held {
			if err := deliver(errorItem(u)); err != nil {
				return err
			}
		}
	}
	if !headerSent {
		if len(pending) > 0 {
			if err := flush(); err != nil {
				return err
			}
		} else if h := c.headerUnion(); len(h) > 0 {
			if err := c.down.SendHeader(h); err != nil {
				return err
			}
		}
	}
	if tr := c.mergedTrailer(); len(tr) > 0 {
		c.down.SetTrailer(tr)
	}
	if policy.Mode == Quorum && succeeded < policy.Quorum {
		return c.quorumError(succeeded)
	}
	if err := c.down.Context().Err(); err != nil {
		return status.FromContextError(err).Err()
	}
	return nil
}
