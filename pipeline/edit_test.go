package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"

	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// payloadMessage is a message of the TestService with a payload.
type payloadMessage interface {
	proto.Message
	GetPayload() *testpb.Payload
}

// editPayload decodes f as a fresh message from newMsg, appends suffix to
// its payload body, and replaces f's bytes with the re-encoded message.
func editPayload[M payloadMessage](f *rawcodec.Frame, newMsg func() M, suffix string) error {
	m := newMsg()
	if err := proto.Unmarshal(f.Bytes(), m); err != nil {
		return err
	}
	p := m.GetPayload()
	if p == nil {
		return fmt.Errorf("%T has no payload", m)
	}
	p.Body = append(p.Body, suffix...)
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	f.Replace(mem.BufferSlice{mem.SliceBuffer(b)})
	return nil
}

// editFilter edits every request payload with reqSuffix and every response
// payload with respSuffix, on unary and bidi calls.
func editFilter(name, reqSuffix, respSuffix string) pipeline.Filter {
	return &pipeline.Funcs{
		FilterName: name,
		RequestMessage: func(_ context.Context, call *pipeline.Call, f *rawcodec.Frame) error {
			switch call.Method {
			case unaryMethod:
				return editPayload(f, func() *testpb.SimpleRequest { return new(testpb.SimpleRequest) }, reqSuffix)
			case bidiMethod:
				return editPayload(f, func() *testpb.StreamingOutputCallRequest { return new(testpb.StreamingOutputCallRequest) }, reqSuffix)
			}
			return nil
		},
		ResponseMessage: func(_ context.Context, call *pipeline.Call, f *rawcodec.Frame) error {
			switch call.Method {
			case unaryMethod:
				return editPayload(f, func() *testpb.SimpleResponse { return new(testpb.SimpleResponse) }, respSuffix)
			case bidiMethod:
				return editPayload(f, func() *testpb.StreamingOutputCallResponse { return new(testpb.StreamingOutputCallResponse) }, respSuffix)
			}
			return nil
		},
	}
}

// TestEditFrames runs two editing filters: the backend sees the request
// edits applied in chain order, the client sees the response edits applied
// on top, in reverse order.
func TestEditFrames(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	svc := &testbackend.Service{
		Unary: func(_ context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			mu.Lock()
			seen = append(seen, string(req.GetPayload().GetBody()))
			mu.Unlock()
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			for {
				req, err := stream.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				mu.Lock()
				seen = append(seen, string(req.GetPayload().GetBody()))
				mu.Unlock()
				if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
					return err
				}
			}
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		editFilter("outer", "+req1", "+resp1"),
		editFilter("inner", "+req2", "+resp2"),
	}})
	ctx := callCtx(t)

	resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("u")}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(resp.GetPayload().GetBody()), "u+req1+req2+resp2+resp1"; got != want {
		t.Errorf("unary response %q, want %q", got, want)
	}

	bidi, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, body := range []string{"a", "b", "c"} {
		if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(body)}}); err != nil {
			t.Fatal(err)
		}
		m, err := bidi.Recv()
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m.GetPayload().GetBody()))
	}
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err != io.EOF {
		t.Fatalf("bidi end: %v, want EOF", err)
	}
	if want := []string{"a+req1+req2+resp2+resp1", "b+req1+req2+resp2+resp1", "c+req1+req2+resp2+resp1"}; !slices.Equal(got, want) {
		t.Errorf("bidi responses %q, want %q", got, want)
	}

	mu.Lock()
	defer mu.Unlock()
	if want := []string{"u+req1+req2", "a+req1+req2", "b+req1+req2", "c+req1+req2"}; !slices.Equal(seen, want) {
		t.Errorf("backend saw %q, want %q", seen, want)
	}
}

// TestEditFramesLarge edits a message that grpc-go delivers in several
// pooled buffers, many times in parallel: the edit must read all of them,
// and freeing the old buffers must not corrupt other calls (-race, pool
// reuse).
func TestEditFramesLarge(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		editFilter("edit", "!", "?"),
	}})
	ctx := callCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			body := make([]byte, 200_000+i)
			for j := range body {
				body[j] = byte(i + j)
			}
			resp, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
			if err != nil {
				errs <- err
				return
			}
			want := append(slices.Clone(body), "!?"...)
			if !slices.Equal(resp.GetPayload().GetBody(), want) {
				errs <- fmt.Errorf("call %d: response body differs (len %d, want %d)", i, len(resp.GetPayload().GetBody()), len(want))
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
