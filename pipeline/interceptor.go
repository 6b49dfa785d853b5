package pipeline

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// StreamInterceptor returns a filter named name that runs a grpc-go stream
// server interceptor (for example one of go-grpc-middleware's) around the
// rest of the chain. The interceptor sees every call as a bidirectional
// stream of *[rawcodec.Frame] messages and a nil service implementation; the
// stream it passes to its handler, with any context it attached, is the one
// the rest of the chain uses.
func StreamInterceptor(name string, i grpc.StreamServerInterceptor) Filter {
	return AroundFunc(name, func(call *Call, stream ServerStream, next Handler) error {
		info := &grpc.StreamServerInfo{FullMethod: call.Method, IsClientStream: true, IsServerStream: true}
		return i(nil, stream, info, func(_ any, s grpc.ServerStream) error {
			return next.Serve(call, s)
		})
	})
}

// UnaryInterceptor returns a filter named name that runs a grpc-go unary
// server interceptor around the rest of the chain.
//
// The interceptor's request is the call's first request message, a
// *[rawcodec.Frame], so the filter waits for that message before anything
// else of the call happens: use it only for methods whose client sends first
// (unary and server-streaming ones; route or select on method names
// otherwise). The response it returns is the call's first response message,
// held back until the interceptor returns, which gives unary calls exact
// unary semantics. If the rest of the chain sends a second response message,
// the call is a stream: the held message and all later ones are sent as they
// come, and the response the interceptor returns is ignored.
func UnaryInterceptor(name string, i grpc.UnaryServerInterceptor) Filter {
	return AroundFunc(name, func(call *Call, stream ServerStream, next Handler) error {
		u := &unaryStream{ServerStream: stream, ctx: stream.Context()}
		first := new(rawcodec.Frame)
		switch err := stream.RecvMsg(first); err {
		case nil:
			u.first = first
		case io.EOF:
			u.eof = true
		default:
			return err
		}
		info := &grpc.UnaryServerInfo{FullMethod: call.Method}
		var req any
		if u.first != nil {
			req = u.first
		}
		resp, err := i(u.ctx, req, info, func(ctx context.Context, r any) (any, error) {
			u.ctx = ctx
			if f, ok := r.(*rawcodec.Frame); ok && f != nil {
				u.replaceFirst(f)
			}
			err := next.Serve(call, u)
			held := u.held
			u.held = nil
			if err != nil {
				if held != nil {
					held.Free()
				}
				return nil, err
			}
			if held == nil {
				return nil, nil
			}
			return held, nil
		})
		if f := u.takeFirst(); f != nil {
			f.Free() // never read by the chain
		}
		f, _ := resp.(*rawcodec.Frame)
		if err != nil {
			if f != nil {
				f.Free()
			}
			return err
		}
		if f != nil && !u.streaming {
			return stream.SendMsg(f)
		}
		if f != nil {
			f.Free()
		}
		return nil
	})
}

// unaryStream replays the request message that UnaryInterceptor read, and
// holds back the first response message.
type unaryStream struct {
	ServerStream
	ctx context.Context

	// mu guards first and eof: the rest of the chain may call RecvMsg on
	// another goroutine, even one that runs on after it returned.
	mu    sync.Mutex
	first *rawcodec.Frame // the request, until the chain reads it
	eof   bool

	held      *rawcodec.Frame // the first response, until the handler returns
	streaming bool
}

// replaceFirst makes f the request the chain reads, when the interceptor
// passed its handler another frame than the one it got.
func (u *unaryStream) replaceFirst(f *rawcodec.Frame) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f == u.first {
		return
	}
	if u.first != nil {
		u.first.Free()
	}
	u.first, u.eof = f, false
}

// takeFirst returns the request if the chain has not read it, and stops
// replaying it.
func (u *unaryStream) takeFirst() *rawcodec.Frame {
	u.mu.Lock()
	defer u.mu.Unlock()
	f := u.first
	u.first = nil
	return f
}

func (u *unaryStream) Context() context.Context { return u.ctx }

func (u *unaryStream) RecvMsg(m any) error {
	if f, ok := m.(*rawcodec.Frame); ok {
		if first := u.takeFirst(); first != nil {
			f.Replace(first.Data)
			first.Data = nil
			return nil
		}
	}
	u.mu.Lock()
	eof := u.eof
	u.mu.Unlock()
	if eof {
		return io.EOF
	}
	return u.ServerStream.RecvMsg(m)
}

func (u *unaryStream) SendMsg(m any) error {
	f, ok := m.(*rawcodec.Frame)
	if !ok || u.streaming {
		return u.ServerStream.SendMsg(m)
	}
	if u.held == nil {
		u.held = &rawcodec.Frame{Data: f.Data}
		f.Data = nil
		return nil
	}
	// A second response: this call streams. Send what was held, then pass
	// everything through.
	u.streaming = true
	held := u.held
	u.held = nil
	if err := u.ServerStream.SendMsg(held); err != nil {
		f.Free()
		return err
	}
	return u.ServerStream.SendMsg(m)
}
