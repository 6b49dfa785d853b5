package route_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestCallKinds makes each of the four call kinds directly, through the
// proxy's general path and through its single-request path (a terminal
// that knows the kinds), and requires identical answers.
func TestCallKinds(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	general := proxytest.Start(t, addr, proxytest.Config{})
	single := proxytest.Start(t, addr, proxytest.Config{Terminal: withKinds})
	d, g, s := allKinds(t, general.Direct), allKinds(t, general.Client), allKinds(t, single.Client)
	if len(d) != 10 || len(g) != len(d) || len(s) != len(d) {
		t.Fatalf("got %d direct, %d general and %d single-request answers, want 10 each", len(d), len(g), len(s))
	}
	for i := range d {
		if !proto.Equal(d[i], g[i]) || !proto.Equal(d[i], s[i]) {
			t.Errorf("answer %d differs: direct %v, general %v, single %v", i, d[i], g[i], s[i])
		}
	}
}

// allKinds makes one call of each kind and returns the answers.
func allKinds(t *testing.T, c testpb.TestServiceClient) []proto.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []proto.Message
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("unary")}, ResponseSize: 5})
	if err != nil {
		t.Fatalf("unary: %v", err)
	}
	got = append(got, resp)

	cs, err := c.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 10, 100} {
		if err := cs.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			t.Fatal(err)
		}
	}
	cresp, err := cs.CloseAndRecv()
	if err != nil {
		t.Fatalf("client stream: %v", err)
	}
	got = append(got, cresp)

	ss, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{ResponseParameters: []*testpb.ResponseParameters{{Size: 3}, {Size: 0}, {Size: 70000}}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		m, err := ss.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("server stream: %v", err)
		}
		got = append(got, m)
	}

	bs, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := bs.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: bytes.Repeat([]byte{byte(i)}, i*1000)}}); err != nil {
			t.Fatal(err)
		}
		m, err := bs.Recv()
		if err != nil {
			t.Fatalf("bidi: %v", err)
		}
		got = append(got, m)
	}
	if err := bs.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bs.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v, want EOF", err)
	}
	return got
}
