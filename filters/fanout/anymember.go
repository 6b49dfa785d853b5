package fanout

import (
	"context"
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
// fits. The members are held until the call ends: Invoke returns, or a
// stream's RecvMsg returns an error or its context ends, as grpc-go
// requires of every stream anyway (or, for a stream with one response, once
// it arrived).
func AnyMember(source MemberSource) grpc.ClientConnInterface {
	return &anyMember{source: source}
}

type anyMember struct {
	source MemberSource
	next   atomic.Uint64
}

// pick acquires the members and chooses one.
func (a *anyMember) pick(ctx context.Context) (grpc.ClientConnInterface, func(), error) {
	set, release, err := a.source.Acquire(ctx)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, nil, err
		}
		return nil, nil, status.Errorf(codes.Unavailable, "fanout: %v", err)
	}
	if len(set.Members) == 0 {
		release()
		return nil, nil, status.Error(codes.Unavailable, "fanout: no members")
	}
	i := (a.next.Add(1) - 1) % uint64(len(set.Members))
	return set.Members[i].Conn, release, nil
}

func (a *anyMember) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	conn, release, err := a.pick(ctx)
	if err != nil {
		return err
	}
	defer release()
	return conn.Invoke(ctx, method, args, reply, opts...)
}

func (a *anyMember) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	conn, release, err := a.pick(ctx)
	if err != nil {
		return nil, err
	}
	release = sync.OnceFunc(release)
	cs, err := conn.NewStream(ctx, desc, method, opts...)
	if err != nil {
		release()
		return nil, err
	}
	stop := context.AfterFunc(ctx, release)
	return &releasingStream{ClientStream: cs, unary: !desc.ServerStreams, release: func() { stop(); release() }}, nil
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
