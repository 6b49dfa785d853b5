package main

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// kind is what a call exercises.
type kind int

const (
	oneUnary  kind = iota // one-to-one unary
	oneStream             // one-to-one server stream
	fanUnary              // fan-out unary: one merged answer
	fanStream             // fan-out server stream: interleaved
	numKinds
)

func (k kind) String() string {
	return [...]string{"one-to-one unary", "one-to-one stream", "fan-out unary", "fan-out stream"}[k]
}

func (k kind) fanout() bool { return k == fanUnary || k == fanStream }
func (k kind) stream() bool { return k == oneStream || k == fanStream }

// variant is the fault a call injects, if any.
type variant int

const (
	plain    variant = iota
	slow             // the client reads with pauses
	cancel           // the client cancels mid-call
	deadline         // the deadline expires mid-call
	fail             // a backend fails on purpose mid-call
	numVariants
)

func (v variant) String() string {
	return [...]string{"plain", "slow reader", "cancel", "deadline", "backend error"}[v]
}

// call is one call's plan.
type call struct {
	kind    kind
	variant variant
	req     request
	// timeout is the call's deadline: the hang guard, or shorter for the
	// deadline variant.
	timeout time.Duration
	// pause is the slow reader's wait after each message.
	pause time.Duration
	// cancelAfter: the client cancels after this many stream messages, or
	// (unary) after cancelDelay.
	cancelAfter int
	cancelDelay time.Duration
}

// hangGuard is the deadline of every call that has no shorter one: a call
// that reaches it hung, and shows as DEADLINE_EXCEEDED under a variant that
// sets no deadline.
const hangGuard = 30 * time.Second

// plan draws a call.
func plan(rng *rand.Rand, members []string) call {
	c := call{kind: kind(rng.IntN(int(numKinds))), timeout: hangGuard}
	c.req.CallID = rng.Uint64()
	r := rng.Float64()
	switch {
	case r < 0.55:
		c.variant = plain
	case r < 0.70:
		c.variant = slow
	case r < 0.80:
		c.variant = cancel
	case r < 0.90:
		c.variant = deadline
	default:
		c.variant = fail
	}
	if !c.kind.stream() && c.variant == slow {
		c.variant = plain // nothing to read slowly
	}
	fanMembers := 1
	if c.kind.fanout() {
		fanMembers = len(members)
	}
	q := &c.req
	switch c.variant {
	case plain:
		if c.kind.stream() {
			q.Count, q.Size, q.IntervalUS = 10+rng.IntN(21), 64+rng.IntN(1024), 500+rng.IntN(2500)
		} else {
			q.Count, q.Size, q.IntervalUS = 1+rng.IntN(4), 64+rng.IntN(512), rng.IntN(2000)
		}
	case slow:
		q.Count, q.Size = 20+rng.IntN(21), 4096
		c.pause = time.Duration(5+rng.IntN(16)) * time.Millisecond
	case cancel:
		if c.kind.stream() {
			q.Count, q.Size, q.IntervalUS = 30, 256, 2000+rng.IntN(3000)
			c.cancelAfter = 1 + rng.IntN(q.Count*fanMembers-1)
		} else {
			q.Count, q.Size, q.IntervalUS = 4, 256, 50_000
			c.cancelDelay = time.Duration(20+rng.IntN(130)) * time.Millisecond
		}
	case deadline:
		if c.kind.stream() {
			q.Count, q.Size, q.IntervalUS = 20, 256, 10_000
			c.timeout = time.Duration(50+rng.IntN(130)) * time.Millisecond
		} else {
			q.Count, q.Size, q.IntervalUS = 3, 256, 50_000
			c.timeout = time.Duration(30+rng.IntN(90)) * time.Millisecond
		}
	case fail:
		q.Size = 256
		if c.kind.stream() {
			q.Count, q.IntervalUS = 20, 1000
			q.FailAfter = rng.IntN(q.Count)
		} else {
			q.Count = 2
		}
		q.Fail = failAny
		if c.kind.fanout() {
			q.Fail = members[rng.IntN(len(members))]
		}
	}
	return c
}

// outcome is what one call did.
type outcome struct {
	kind       kind
	variant    variant
	code       codes.Code
	received   int
	errorItems int
	lost       int
	anomalies  []string
	lostNotes  []string
}

// do makes the call on conn and checks its answer. It never uses the run's
// context: a call that started is allowed to finish.
func (c *call) do(conn *grpc.ClientConn, fanMembers, cluster []string) outcome {
	members, service := cluster, serviceOne
	if c.kind.fanout() {
		members, service = fanMembers, serviceFan
	}
	chk := newChecker(c.req.CallID, c.req.Count, members, c.kind.fanout())
	ctx, cancelCall := context.WithTimeout(context.Background(), c.timeout)
	defer cancelCall()
	var err error
	if c.kind.stream() {
		err = c.stream(ctx, cancelCall, conn, fullMethod(service, methodStream), chk)
	} else {
		if c.cancelDelay > 0 {
			t := time.AfterFunc(c.cancelDelay, cancelCall)
			defer t.Stop()
		}
		var resp []byte
		err = conn.Invoke(ctx, fullMethod(service, methodUnary), c.req.marshal(), &resp, grpc.ForceCodec(bytesCodec{}))
		if err == nil {
			chk.unaryAnswer(resp)
		}
	}
	code := status.Code(err)
	chk.finish(code)
	return outcome{kind: c.kind, variant: c.variant, code: code, received: chk.received, errorItems: chk.errorItems, lost: chk.lost, anomalies: chk.anomalies, lostNotes: chk.lostNotes}
}

var streamDesc = &grpc.StreamDesc{ServerStreams: true}

func (c *call) stream(ctx context.Context, cancelCall context.CancelFunc, conn *grpc.ClientConn, method string, chk *checker) error {
	st, err := conn.NewStream(ctx, streamDesc, method, grpc.ForceCodec(bytesCodec{}))
	if err != nil {
		return err
	}
	if err := st.SendMsg(c.req.marshal()); err != nil {
		if errors.Is(err, io.EOF) {
			// The server ended the call; RecvMsg returns its status.
			return recvAll(st, c, cancelCall, chk)
		}
		return err
	}
	if err := st.CloseSend(); err != nil {
		return err
	}
	return recvAll(st, c, cancelCall, chk)
}

func recvAll(st grpc.ClientStream, c *call, cancelCall context.CancelFunc, chk *checker) error {
	n := 0
	for {
		var m []byte
		err := st.RecvMsg(&m)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		chk.streamMessage(m)
		n++
		if c.cancelAfter > 0 && n == c.cancelAfter {
			cancelCall()
		}
		if c.pause > 0 {
			time.Sleep(c.pause)
		}
	}
}

// conns is the client's connections to the proxy. One at a time is
// replaced (churn); the old one closes after its last call.
type conns struct {
	target string
	mu     sync.Mutex
	list   []*trackedConn
	wg     sync.WaitGroup // retiring connections
	churns atomic.Int64
}

type trackedConn struct {
	*grpc.ClientConn
	inflight atomic.Int64
}

func dialProxy(target string) (*trackedConn, error) {
	cc, err := grpc.NewClient("passthrough:///"+target, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	return &trackedConn{ClientConn: cc}, nil
}

func newConns(target string, n int) (*conns, error) {
	cs := &conns{target: target}
	for range n {
		c, err := dialProxy(target)
		if err != nil {
			cs.close()
			return nil, err
		}
		cs.list = append(cs.list, c)
	}
	return cs, nil
}

// get returns connection i (modulo their number) with one more call
// counted on it; the caller calls done.
func (cs *conns) get(i int) *trackedConn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	c := cs.list[i%len(cs.list)]
	c.inflight.Add(1)
	return c
}

func (c *trackedConn) done() { c.inflight.Add(-1) }

// churn replaces connection i by a new one; the old one closes once no call
// uses it (or after the hang guard).
func (cs *conns) churn(i int) error {
	c, err := dialProxy(cs.target)
	if err != nil {
		return err
	}
	cs.mu.Lock()
	i %= len(cs.list)
	old := cs.list[i]
	cs.list[i] = c
	cs.mu.Unlock()
	cs.churns.Add(1)
	cs.wg.Go(func() {
		deadline := time.Now().Add(2 * hangGuard)
		for old.inflight.Load() > 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		_ = old.Close()
	})
	return nil
}

func (cs *conns) close() {
	cs.wg.Wait()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.list {
		_ = c.Close()
	}
	cs.list = nil
}
