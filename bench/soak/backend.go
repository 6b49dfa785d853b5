package main

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// backend is one upstream, served in this process so that it can be killed
// (grpc.Server.Stop: every connection closed, every call on it failed) and
// restarted on the same address.
type backend struct {
	name string
	addr string // fixed for the whole run

	mu     sync.Mutex
	srv    *grpc.Server // nil while down
	served chan struct{}

	sent     atomic.Int64 // items sent (Send returned nil)
	calls    atomic.Int64
	kills    atomic.Int64
	restarts atomic.Int64
}

// startBackend serves a new backend on a port the system picks.
func startBackend(name string) (*backend, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, addr: lis.Addr().String()}
	b.serve(lis)
	return b, nil
}

func (b *backend) serve(lis net.Listener) {
	srv := grpc.NewServer(
		grpc.ForceServerCodec(bytesCodec{}),
		grpc.UnknownServiceHandler(b.handle),
	)
	done := make(chan struct{})
	b.mu.Lock()
	b.srv, b.served = srv, done
	b.mu.Unlock()
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
}

// up reports whether the backend is serving.
func (b *backend) up() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.srv != nil
}

// kill stops the server at once: listeners and connections closed, calls
// in flight failed. It reports whether the backend was up.
func (b *backend) kill() bool {
	b.mu.Lock()
	srv, done := b.srv, b.served
	b.srv = nil
	b.mu.Unlock()
	if srv == nil {
		return false
	}
	srv.Stop()
	<-done
	b.kills.Add(1)
	return true
}

// restart serves again on the same address, retrying while the port is
// still taken, until ctx ends.
func (b *backend) restart(ctx context.Context) error {
	for {
		lis, err := net.Listen("tcp", b.addr)
		if err == nil {
			b.serve(lis)
			b.restarts.Add(1)
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("backend %s: restart on %s: %w", b.name, b.addr, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// handle serves both methods of both services: Unary answers with
// request.Count items at once (after Count × Interval), Stream sends
// them one message each (Interval before each).
func (b *backend) handle(_ any, stream grpc.ServerStream) error {
	b.calls.Add(1)
	method, _ := grpc.MethodFromServerStream(stream)
	var in []byte
	if err := stream.RecvMsg(&in); err != nil {
		return err
	}
	req, err := parseRequest(in)
	if err != nil {
		return status.Errorf(codes.InvalidArgument, "soak backend: %v", err)
	}
	fails := req.Fail == failAny || req.Fail == b.name
	payload := make([]byte, req.Size)
	for i := range payload {
		payload[i] = byte(i)
	}
	interval := time.Duration(req.IntervalUS) * time.Microsecond
	ctx := stream.Context()
	switch {
	case strings.HasSuffix(method, "/"+methodUnary):
		if err := sleep(ctx, time.Duration(req.Count)*interval); err != nil {
			return err
		}
		if fails {
			return injected(b.name, 0)
		}
		items := make([][]byte, req.Count)
		for i := range items {
			items[i] = appendItem(nil, b.name, uint64(i), req.CallID, payload)
		}
		if err := stream.SendMsg(appendItems(nil, items)); err != nil {
			return err
		}
		b.sent.Add(int64(req.Count))
		return nil
	case strings.HasSuffix(method, "/"+methodStream):
		for i := range req.Count {
			if fails && i == req.FailAfter {
				return injected(b.name, i)
			}
			if err := sleep(ctx, interval); err != nil {
				return err
			}
			// A new slice each time: grpc-go may hold the message after
			// SendMsg returns.
			msg := appendItem(make([]byte, 0, len(payload)+32), b.name, uint64(i), req.CallID, payload)
			if err := stream.SendMsg(msg); err != nil {
				return err
			}
			b.sent.Add(1)
		}
		return nil
	}
	return status.Errorf(codes.Unimplemented, "soak backend: unknown method %s", method)
}

// injectedCode is the code of a failure the request asked for.
const injectedCode = codes.Aborted

func injected(name string, after int) error {
	return status.Errorf(injectedCode, "soak backend %s: injected failure after %d items", name, after)
}

// sleep waits d, or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}
