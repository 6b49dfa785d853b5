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

// TestCallKinds makes each of the four call kinds directly and through the
// proxy and requires identical answers.
func TestCallKinds(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{})
	clients := map[string]testpb.TestServiceClient{"direct": env.Direct, "proxy": env.Client}

	results := map[string][]proto.Message{}
	for name, c := range clients {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var got []proto.Message

		resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("unary")}})
		if err != nil {
			t.Fatalf("%s unary: %v", name, err)
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
			t.Fatalf("%s client stream: %v", name, err)
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
				t.Fatalf("%s server stream: %v", name, err)
			}
			got = append(got, m)
		}

		bs, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 5; i++ {
			body := bytes.Repeat([]byte{byte(i)}, i*1000)
			if err := bs.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
				t.Fatal(err)
			}
			m, err := bs.Recv()
			if err != nil {
				t.Fatalf("%s bidi: %v", name, err)
			}
			got = append(got, m)
		}
		if err := bs.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Recv(); err != io.EOF {
			t.Fatalf("%s bidi end: %v, want EOF", name, err)
		}
		results[name] = got
	}
	d, p := results["direct"], results["proxy"]
	if len(d) != len(p) || len(d) != 10 {
		t.Fatalf("got %d direct and %d proxied messages, want 10 each", len(d), len(p))
	}
	for i := range d {
		if !proto.Equal(d[i], p[i]) {
			t.Errorf("message %d differs: direct %v, proxy %v", i, d[i], p[i])
		}
	}
}
