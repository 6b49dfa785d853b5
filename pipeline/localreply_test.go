package pipeline_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// countingService echoes like testbackend's default and counts the calls
// that reached a handler.
func countingService(calls *atomic.Int32) *testbackend.Service {
	echo := &testbackend.Service{}
	return &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			calls.Add(1)
			return echo.UnaryCall(ctx, req)
		},
		ClientStream: func(s testpb.TestService_StreamingInputCallServer) error {
			calls.Add(1)
			return echo.StreamingInputCall(s)
		},
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			calls.Add(1)
			return echo.StreamingOutputCall(req, s)
		},
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error {
			calls.Add(1)
			return echo.FullDuplexCall(s)
		},
	}
}

// endRecorder is a filter whose response end hook records the status it
// saw, and whose response header hook adds "x-<name>: seen".
type endRecorder struct {
	name string
	mu   sync.Mutex
	ends []*status.Status
}

func (e *endRecorder) Name() string { return e.name }

func (e *endRecorder) OnResponseHeaders(_ context.Context, _ *pipeline.Call, md metadata.MD) error {
	md.Set("x-"+e.name, "seen")
	return nil
}

func (e *endRecorder) OnResponseEnd(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
	e.mu.Lock()
	e.ends = append(e.ends, end.Status)
	e.mu.Unlock()
}

func (e *endRecorder) statuses() []*status.Status {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.ends)
}

var (
	_ pipeline.ResponseHeadersHook = (*endRecorder)(nil)
	_ pipeline.ResponseEndHook     = (*endRecorder)(nil)
)

// deniedStatus is a status with details, as an auth filter would return.
func deniedStatus(t *testing.T) *status.Status {
	t.Helper()
	st, err := status.New(codes.PermissionDenied, "denier: scope admin required").WithDetails(
		&errdetails.ErrorInfo{Reason: "MISSING_SCOPE", Domain: "manifold.test", Metadata: map[string]string{"scope": "admin"}},
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "user:alice", Description: "none left"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// requireStatus fails unless err carries exactly want: code, message and
// details.
func requireStatus(t *testing.T, err error, want *status.Status) {
	t.Helper()
	got, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v has no status", err)
	}
	if !proto.Equal(got.Proto(), want.Proto()) {
		t.Fatalf("status %v (details %v), want %v (details %v)", got, got.Details(), want, want.Details())
	}
}

// TestLocalReplyRequestHeaders ends every kind of call in a request header
// hook. The client gets the status with its details and the headers that
// earlier filters add, the backend is never called, earlier filters see the
// status in their end hooks, and later filters (in the same stage and past
// an around filter) never see the call.
func TestLocalReplyRequestHeaders(t *testing.T) {
	t.Parallel()
	for _, kind := range callKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			addr, _ := testbackend.Start(t, countingService(&calls))
			want := deniedStatus(t)
			outer := &endRecorder{name: "outer"}
			later := &recorder{}
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
				outer,
				&pipeline.Funcs{
					FilterName: "denier",
					RequestHeaders: func(context.Context, *pipeline.Call) error {
						return want.Err()
					},
				},
				recordingFilter("same-stage", later),
				recordingAround("around", later),
				recordingFilter("next-stage", later),
			}})

			var header metadata.MD
			err := kind.run(callCtx(t), env.Client, grpc.Header(&header))
			requireStatus(t, err, want)
			if calls.Load() != 0 {
				t.Errorf("backend handled %d calls, want 0", calls.Load())
			}
			if got := outer.statuses(); len(got) != 1 || !proto.Equal(got[0].Proto(), want.Proto()) {
				t.Errorf("outer end hook saw %v, want once %v", got, want)
			}
			if got := header.Get("x-outer"); !slices.Equal(got, []string{"seen"}) {
				t.Errorf("client header x-outer = %q, want [seen] (header %v)", got, header)
			}
			if ev := later.snapshot(); len(ev) != 0 {
				t.Errorf("later filters saw %q, want nothing", ev)
			}
		})
	}
}

// TestLocalReplyRequestMessage ends a bidi call on its second request
// message: the first message went through and was echoed, the second never
// reaches the backend (its stream is cancelled), and later filters never see
// it.
func TestLocalReplyRequestMessage(t *testing.T) {
	t.Parallel()
	type backendResult struct {
		received int
		err      error
	}
	results := make(chan backendResult, 1)
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Bidi: func(stream testpb.TestService_FullDuplexCallServer) error {
			n := 0
			for {
				req, err := stream.Recv()
				if err != nil {
					results <- backendResult{n, err}
					return err
				}
				n++
				if err := stream.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
					results <- backendResult{n, err}
					return err
				}
			}
		},
	})
	want, err := status.New(codes.InvalidArgument, "denier: message too long").WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "payload.body", Description: "too long"}}},
	)
	if err != nil {
		t.Fatal(err)
	}
	outer := &endRecorder{name: "outer"}
	later := &recorder{}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		outer,
		&pipeline.Funcs{
			FilterName: "denier",
			RequestMessage: func(_ context.Context, _ *pipeline.Call, f *rawcodec.Frame) error {
				if f.Len() > 8 {
					return want.Err()
				}
				return nil
			},
		},
		recordingAround("around", later),
		recordingFilter("later", later),
	}})
	ctx := callCtx(t)
	bidi, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("ok")}}); err != nil {
		t.Fatal(err)
	}
	if m, err := bidi.Recv(); err != nil || string(m.GetPayload().GetBody()) != "ok" {
		t.Fatalf("first message: %v, %v", m, err)
	}
	if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: make([]byte, 100)}}); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	_, err = bidi.Recv()
	requireStatus(t, err, want)

	select {
	case r := <-results:
		if r.received != 1 {
			t.Errorf("backend received %d messages, want 1", r.received)
		}
		if status.Code(r.err) != codes.Canceled {
			t.Errorf("backend stream ended with %v, want Canceled", r.err)
		}
	case <-ctx.Done():
		t.Fatal("backend handler did not end")
	}
	if got := outer.statuses(); len(got) != 1 || !proto.Equal(got[0].Proto(), want.Proto()) {
		t.Errorf("outer end hook saw %v, want once %v", got, want)
	}
	if n := later.count(reqMessage); n != 2 {
		t.Errorf("later filters saw %d request messages, want 2 (the first message, once each)", n)
	}
}

// TestLocalReplyRequestMessageUnary ends a unary call on its request
// message: the backend's handler never runs.
func TestLocalReplyRequestMessageUnary(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	addr, _ := testbackend.Start(t, countingService(&calls))
	outer := &endRecorder{name: "outer"}
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		outer,
		&pipeline.Funcs{
			FilterName: "denier",
			RequestMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error {
				return errors.New("plain error")
			},
		},
	}})
	err := runUnary(callCtx(t), env.Client)
	// A hook's non-status error becomes Unknown with its text.
	requireStatus(t, err, status.New(codes.Unknown, "plain error"))
	if calls.Load() != 0 {
		t.Errorf("backend handled %d calls, want 0", calls.Load())
	}
	if got := outer.statuses(); len(got) != 1 || got[0].Code() != codes.Unknown {
		t.Errorf("outer end hook saw %v, want once Unknown", got)
	}
}

// TestLocalReplyResponse ends calls on the response side, in a response
// header hook and in a response message hook: the client gets the status,
// and only the messages before the failing one; the outer filter's end hook
// sees the status.
func TestLocalReplyResponse(t *testing.T) {
	t.Parallel()
	aborted, err := status.New(codes.Aborted, "guard: bad response header").WithDetails(
		&errdetails.ErrorInfo{Reason: "BAD_HEADER", Domain: "manifold.test"})
	if err != nil {
		t.Fatal(err)
	}
	dataLoss := status.New(codes.DataLoss, "guard: second message rejected")
	tests := []struct {
		name     string
		guard    *pipeline.Funcs
		want     *status.Status
		wantMsgs int
	}{{
		name: "response headers",
		guard: &pipeline.Funcs{ResponseHeaders: func(context.Context, *pipeline.Call, metadata.MD) error {
			return aborted.Err()
		}},
		want:     aborted,
		wantMsgs: 0,
	}, {
		name: "response message",
		guard: func() *pipeline.Funcs {
			var n atomic.Int32
			return &pipeline.Funcs{ResponseMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error {
				if n.Add(1) == 2 {
					return dataLoss.Err()
				}
				return nil
			}}
		}(),
		want:     dataLoss,
		wantMsgs: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			outer := &endRecorder{name: "outer"}
			tt.guard.FilterName = "guard"
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{outer, tt.guard}})
			s, err := env.Client.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{
				ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}},
			})
			if err != nil {
				t.Fatal(err)
			}
			msgs := 0
			for {
				_, err = s.Recv()
				if err != nil {
					break
				}
				msgs++
			}
			requireStatus(t, err, tt.want)
			if msgs != tt.wantMsgs {
				t.Errorf("client got %d messages, want %d", msgs, tt.wantMsgs)
			}
			if got := outer.statuses(); len(got) != 1 || !proto.Equal(got[0].Proto(), tt.want.Proto()) {
				t.Errorf("outer end hook saw %v, want once %v", got, tt.want)
			}
		})
	}
}

// trailerWatcher is a filter whose end hook records the retry-after
// trailer it saw and, when asked, removes it.
type trailerWatcher struct {
	remove bool
	mu     sync.Mutex
	seen   []string
}

func (w *trailerWatcher) Name() string { return "watcher" }

func (w *trailerWatcher) OnResponseEnd(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
	w.mu.Lock()
	w.seen = append(w.seen, end.Trailer.Get("retry-after")...)
	w.mu.Unlock()
	if w.remove {
		delete(end.Trailer, "retry-after")
	}
}

// TestLocalReplyTrailers: a local reply made with pipeline.LocalReply sends
// its trailers with its status, past any around filter, and earlier
// filters' end hooks see them and may remove them; the upstream never sees
// the call.
func TestLocalReplyTrailers(t *testing.T) {
	t.Parallel()
	st := status.New(codes.ResourceExhausted, "limiter: slow down")
	refuser := &pipeline.Funcs{
		FilterName: "limiter",
		RequestHeaders: func(context.Context, *pipeline.Call) error {
			return pipeline.LocalReply(st, metadata.Pairs("retry-after", "3"))
		},
	}
	for _, tc := range []struct {
		name        string
		watcher     *trailerWatcher
		wantTrailer []string
	}{
		{"no end hooks: the server sends them", nil, []string{"3"}},
		{"an earlier end hook sees them", &trailerWatcher{}, []string{"3"}},
		{"an earlier end hook removes them", &trailerWatcher{remove: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var calls atomic.Int32
			addr, _ := testbackend.Start(t, countingService(&calls))
			var filters []pipeline.Filter
			if tc.watcher != nil {
				filters = append(filters, tc.watcher)
			}
			later := &recorder{}
			filters = append(filters, recordingAround("around", later), refuser)
			env := proxytest.Start(t, addr, proxytest.Config{Filters: filters})
			var trailer metadata.MD
			err := runUnary(callCtx(t), env.Client, grpc.Trailer(&trailer))
			requireStatus(t, err, st)
			if got := trailer.Get("retry-after"); !slices.Equal(got, tc.wantTrailer) {
				t.Errorf("client trailer retry-after = %q, want %q", got, tc.wantTrailer)
			}
			if tc.watcher != nil && !slices.Equal(tc.watcher.seen, []string{"3"}) {
				t.Errorf("the earlier end hook saw retry-after %q, want [3]", tc.watcher.seen)
			}
			if calls.Load() != 0 {
				t.Errorf("backend handled %d calls, want 0", calls.Load())
			}
		})
	}
}
