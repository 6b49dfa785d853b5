package fanout

import (
	"context"
	"io"
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AnyMember returns a connection that sends each call to one current member
// of source, taking the members in turn from call to call. It is what
// server reflection asks for the method kinds of a dynamic group
// ([methodkind.NewReflection]); any use that needs one member, not all,
// fits.
//
// A member that cannot be reached is skipped: when opening the call on it
// fails with UNAVAILABLE, before anything was sent, the call is opened on
// the next member of the same set, each member tried at most once, and the
// last member's error is returned when none could be reached. So one
// stopped member, still listed until the resolver drops it, does not fail
// the method-kind lookup (whose failures are remembered for a while). A
// failure once the call is open is returned as is: the request may have
// reached the member. Invoke is sent as a stream of one request and one
// response, as grpc-go's own Invoke does, so that opening it is a separate
// step; it goes through the member connection's stream interceptors, not
// its unary ones.
//
// The members are held until the call ends: Invoke returns, or a stream's
// RecvMsg returns an error or its context ends, as grpc-go requires of
// every stream anyway (or, for a stream with one response, once it
// arrived).
func AnyMember(source MemberSource) grpc.ClientConnInterface {
	return &anyMember{source: source}
}

type anyMember struct {
	source MemberSource
	next   atomic.Uint64
}

// unaryDesc is how Invoke opens its call.
var unaryDesc = grpc.StreamDesc{StreamName: "unary"}

func (a *anyMember) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	cs, err := a.open(ctx, &unaryDesc, method, opts...)
	if err != nil {
		return err
	}
	defer cs.release()
	// io.EOF from SendMsg means the stream ended; RecvMsg tells why.
	if err := cs.SendMsg(args); err != nil && err != io.EOF {
		return err
	}
	if err := cs.CloseSend(); err != nil {
		return err
	}
	return cs.RecvMsg(reply)
}

func (a *anyMember) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	cs, err := a.open(ctx, desc, method, opts...)
	if err != nil {
		return nil, err
	}
	return cs, nil
}

// open acquires the members and opens the call on the next one that can be
// reached.
func (a *anyMember) open(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (*releasingStream, error) {
	set, release, err := a.source.Acquire(ctx)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Errorf(codes.Unavailable, "fanout: %v", err)
	}
	release = sync.OnceFunc(release)
	n := uint64(len(set.Members))
	if n == 0 {
		release()
		return nil, status.Error(codes.Unavailable, "fanout: no members")
	}
	first := a.next.Add(1) - 1
	for i := range n {
		var cs grpc.ClientStream
		cs, err = set.Members[(first+i)%n].Conn.NewStream(ctx, desc, method, opts...)
		if err == nil {
			stop := context.AfterFunc(ctx, release)
			return &releasingStream{ClientStream: cs, unary: !desc.ServerStreams, release: func() { stop(); release() }}, nil
		}
		// Only a member that could not be reached is skipped: the call
		// never left, so the next member may take it.
		if status.Code(err) != codes.Unavailable || ctx.Err() != nil {
			break
		}
	}
	release()
	return nil, err
}

// releasingStream releases its members when the stream ends.
type releasingStream struct {
	grpc.ClientStream
	unary   bool // one response: the stream ends with it
	release func()
}

func (s *releasingStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err != nil || s.unary {
		s.release()
	}
	return err
}

var _ grpc.ClientConnInterface = (*anyMember)(nil)
