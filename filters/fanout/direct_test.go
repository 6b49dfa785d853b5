package fanout_test

import (
	"context"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// panickyStream panics on its nth SendMsg.
type panickyStream struct {
	pipeline.ServerStream
	at int32
	n  *atomic.Int32
}

func (s *panickyStream) SendMsg(m any) error {
	if s.n.Add(1) == s.at {
		panic("wrapper broke")
	}
	return s.ServerStream.SendMsg(m)
}

// TestDirectSendPanic: once members send their stream messages themselves,
// a panic in an around filter's stream wrapper on a member's goroutine ends
// that call with INTERNAL, and the process and the next call go on.
func TestDirectSendPanic(t *testing.T) {
	var addrs []string
	for i := range 2 {
		addrs = append(addrs, serveMachine(t, &machine{name: nodeName(i)}))
	}
	var members []fanout.Member
	var opts []server.Option
	for i, a := range addrs {
		cl, err := cluster.New(cluster.Config{Name: nodeName(i), Target: "passthrough:///" + a})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, fanout.Member{Name: nodeName(i), Conn: cl.Conn()})
		opts = append(opts, server.WithCloser(cl))
	}
	term, err := fanout.New(members, fanout.Config{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	wrap := pipeline.AroundFunc("wrapper", func(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
		if len(call.Inbound.Get("x-panic-at")) == 0 {
			return next.Serve(call, s)
		}
		return next.Serve(call, &panickyStream{ServerStream: s, at: 40, n: new(atomic.Int32)})
	})
	chain, err := pipeline.Build([]pipeline.Filter{wrap}, term)
	if err != nil {
		t.Fatal(err)
	}
	conn := proxytest.Dial(t, proxytest.Serve(t, chain, opts...), grpc.WithTransportCredentials(insecure.NewCredentials()))
	client := clusterpb.NewMachineClient(conn)

	lines := func(ctx context.Context) (int, error) {
		s, err := client.Logs(ctx, &clusterpb.LogsRequest{Lines: 200})
		if err != nil {
			return 0, err
		}
		n := 0
		for {
			if _, err := s.Recv(); err != nil {
				if err == io.EOF {
					return n, nil
				}
				return n, err
			}
			n++
		}
	}
	n, err := lines(metadata.AppendToOutgoingContext(callCtx(t), "x-panic-at", "40"))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "panic") {
		t.Fatalf("call with a panicking wrapper: %d lines, %v; want INTERNAL", n, err)
	}
	if n, err := lines(callCtx(t)); err != nil || n != 400 {
		t.Fatalf("next call: %d lines, %v; want 400", n, err)
	}
}

// TestSingleRequestKinds: for methods whose clients send one message, each
// member is sent the request from its receiving goroutine; a client that
// sends two messages to a unary method anyway gets every member's verdict
// (grpc-go servers refuse the second message), not a hang.
func TestSingleRequestKinds(t *testing.T) {
	g := startGroup(t, 3, nil, fanout.Config{})
	rawStream := func(method string) grpc.ClientStream {
		s, err := g.conn.NewStream(callCtx(t), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}

	// Unary, two requests: every member refuses the second; the merged
	// answer says so for each of them.
	u := rawStream("/manifold.cluster.v1.Machine/Version")
	for range 2 {
		if err := u.SendMsg(&clusterpb.VersionRequest{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := u.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var resp clusterpb.VersionResponse
	err := u.RecvMsg(&resp)
	if err != nil {
		t.Fatalf("two requests to a unary method: %v", err)
	}
	if len(resp.GetMessages()) != 3 {
		t.Fatalf("%d items, want one per member: %v", len(resp.GetMessages()), &resp)
	}
	for _, item := range resp.GetMessages() {
		if item.GetMetadata().GetError() == "" {
			t.Errorf("member %s answered a unary call with two requests: %v", item.GetMetadata().GetHostname(), item)
		}
	}
}
