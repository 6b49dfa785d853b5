package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// dialBackend connects straight to b, without a proxy: a one-to-one call.
func dialBackend(t *testing.T, b *backend) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func startTestBackend(t *testing.T, name string) *backend {
	t.Helper()
	b, err := startBackend(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.kill() })
	return b
}

// TestCallVariants makes each variant's call against a backend directly
// and checks the code and the items the checker counted: the client, the
// backend and the checker agree, with nothing lost.
func TestCallVariants(t *testing.T) {
	b := startTestBackend(t, "pair-1")
	cc := dialBackend(t, b)
	tests := []struct {
		name     string
		c        call
		code     codes.Code
		received int // -1: some, fewer than asked
	}{
		{"unary", call{kind: oneUnary, req: request{Count: 3, Size: 10}}, codes.OK, 3},
		{"stream", call{kind: oneStream, req: request{Count: 7, Size: 100, IntervalUS: 100}}, codes.OK, 7},
		{"slow reader", call{kind: oneStream, variant: slow, req: request{Count: 5, Size: 4096}, pause: 5 * time.Millisecond}, codes.OK, 5},
		{"stream fails", call{kind: oneStream, variant: fail, req: request{Count: 5, Fail: failAny, FailAfter: 2}}, injectedCode, 2},
		{"stream fails for another backend", call{kind: oneStream, variant: fail, req: request{Count: 5, Fail: "pair-2", FailAfter: 2}}, codes.OK, 5},
		{"unary fails", call{kind: oneUnary, variant: fail, req: request{Count: 2, Fail: failAny}}, injectedCode, 0},
		{"stream cancelled", call{kind: oneStream, variant: cancel, req: request{Count: 30, IntervalUS: 20_000}, cancelAfter: 2}, codes.Canceled, 2},
		{"unary cancelled", call{kind: oneUnary, variant: cancel, req: request{Count: 4, IntervalUS: 500_000}, cancelDelay: 50 * time.Millisecond}, codes.Canceled, 0},
		{"stream deadline", call{kind: oneStream, variant: deadline, req: request{Count: 20, IntervalUS: 50_000}, timeout: 300 * time.Millisecond}, codes.DeadlineExceeded, -1},
		{"unary deadline", call{kind: oneUnary, variant: deadline, req: request{Count: 3, IntervalUS: 500_000}, timeout: 100 * time.Millisecond}, codes.DeadlineExceeded, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.c
			c.req.CallID = uint64(i + 100)
			if c.timeout == 0 {
				c.timeout = 20 * time.Second
			}
			o := c.do(cc, trio, pair)
			if o.code != tt.code {
				t.Errorf("code = %v, want %v", o.code, tt.code)
			}
			switch {
			case tt.received < 0 && (o.received == 0 || o.received >= c.req.Count):
				t.Errorf("received %d items, want some, fewer than %d", o.received, c.req.Count)
			case tt.received >= 0 && o.received != tt.received:
				t.Errorf("received %d items, want %d", o.received, tt.received)
			}
			if o.lost != 0 || len(o.anomalies) != 0 {
				t.Errorf("lost %d %q, anomalies %q", o.lost, o.lostNotes, o.anomalies)
			}
		})
	}
}

// TestKillRestart kills a backend in the middle of a stream: the call
// fails UNAVAILABLE with a prefix of the items, nothing counted lost; the
// backend then serves again on the same address.
func TestKillRestart(t *testing.T) {
	b := startTestBackend(t, "pair-1")
	cc := dialBackend(t, b)
	addr := b.addr

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := cc.NewStream(ctx, streamDesc, fullMethod(serviceOne, methodStream), grpc.ForceCodec(bytesCodec{}))
	if err != nil {
		t.Fatal(err)
	}
	req := request{CallID: 7, Count: 1000, IntervalUS: 10_000}
	if err := st.SendMsg(req.marshal()); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseSend(); err != nil {
		t.Fatal(err)
	}
	chk := newChecker(req.CallID, req.Count, pair, false)
	c := &call{}
	for range 3 {
		var m []byte
		if err := st.RecvMsg(&m); err != nil {
			t.Fatal(err)
		}
		chk.streamMessage(m)
	}
	if !b.kill() {
		t.Fatal("kill: backend was not up")
	}
	if b.up() || b.kill() {
		t.Fatal("backend still up after kill")
	}
	err = recvAll(st, c, cancel, chk)
	chk.finish(status.Code(err))
	if got := status.Code(err); got != codes.Unavailable {
		t.Errorf("stream ended with %v (%v), want UNAVAILABLE", got, err)
	}
	if chk.received < 3 || chk.lost != 0 || len(chk.anomalies) != 0 {
		t.Errorf("received %d, lost %d, anomalies %q; want at least 3, none lost", chk.received, chk.lost, chk.anomalies)
	}

	if err := b.restart(ctx); err != nil {
		t.Fatal(err)
	}
	if !b.up() || b.addr != addr {
		t.Fatalf("after restart: up %v on %s, want up on %s", b.up(), b.addr, addr)
	}
	var resp []byte
	req = request{CallID: 8, Count: 2}
	if err := cc.Invoke(ctx, fullMethod(serviceOne, methodUnary), req.marshal(), &resp, grpc.ForceCodec(bytesCodec{}), grpc.WaitForReady(true)); err != nil {
		t.Fatalf("call after restart: %v", err)
	}
	chk = newChecker(req.CallID, req.Count, pair, false)
	chk.unaryAnswer(resp)
	chk.finish(codes.OK)
	if chk.received != 2 || chk.lost != 0 || len(chk.anomalies) != 0 {
		t.Errorf("after restart: received %d, lost %d, anomalies %q", chk.received, chk.lost, chk.anomalies)
	}
	if b.kills.Load() != 1 || b.restarts.Load() != 1 {
		t.Errorf("kills %d, restarts %d; want 1 and 1", b.kills.Load(), b.restarts.Load())
	}
}
