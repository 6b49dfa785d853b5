package pipeline_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// Full method names of the interop TestService.
const (
	emptyMethod        = "/grpc.testing.TestService/EmptyCall"
	unaryMethod        = "/grpc.testing.TestService/UnaryCall"
	clientStreamMethod = "/grpc.testing.TestService/StreamingInputCall"
	serverStreamMethod = "/grpc.testing.TestService/StreamingOutputCall"
	bidiMethod         = "/grpc.testing.TestService/FullDuplexCall"
)

// testTimeout bounds every call a test makes; tests never measure time.
const testTimeout = 10 * time.Second

func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// chainProxy starts a proxy in front of backendAddr whose chain and server
// log to logger (proxytest builds its chain without options), and returns a
// client of it. terminal, when non-nil, replaces the route terminal.
func chainProxy(t *testing.T, backendAddr string, filters []pipeline.Filter, terminal func(*cluster.Cluster) pipeline.Handler, logger *slog.Logger) testpb.TestServiceClient {
	t.Helper()
	cl, err := cluster.New(cluster.Config{Name: "backend", Target: "passthrough:///" + backendAddr})
	if err != nil {
		t.Fatal(err)
	}
	var term pipeline.Handler = route.New(cl)
	if terminal != nil {
		term = terminal(cl)
	}
	chain, err := pipeline.Build(filters, term, pipeline.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := proxytest.Serve(t, chain, server.WithCloser(cl), server.WithLogger(logger))
	return testpb.NewTestServiceClient(proxytest.Dial(t, proxyAddr))
}

// recorder collects events from hooks that may run on several goroutines.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(e string) {
	r.mu.Lock()
	r.events = append(r.events, e)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.events)
}

// count returns how many events start with prefix.
func (r *recorder) count(prefix string) int {
	n := 0
	for _, e := range r.snapshot() {
		if strings.HasPrefix(e, prefix) {
			n++
		}
	}
	return n
}

// waitCount waits until count(prefix) reaches n. Request-side hooks run on
// the terminal's request goroutine, which may still be finishing when the
// client already has its answer.
func (r *recorder) waitCount(t *testing.T, prefix string, n int) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for r.count(prefix) < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d %q events; have %q", n, prefix, r.snapshot())
		}
		time.Sleep(time.Millisecond)
	}
}

// logCapture is a slog.Handler that keeps every record's message and
// string attributes.
type logCapture struct {
	mu      sync.Mutex
	records []logRecord
}

type logRecord struct {
	msg   string
	attrs map[string]string
}

func (l *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (l *logCapture) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{msg: r.Message, attrs: map[string]string{}}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	l.mu.Lock()
	l.records = append(l.records, rec)
	l.mu.Unlock()
	return nil
}

func (l *logCapture) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCapture) WithGroup(string) slog.Handler      { return l }

func (l *logCapture) snapshot() []logRecord {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.records)
}

// callKind makes one call of a kind and reports how many messages each way
// it carried.
type callKind struct {
	name        string
	method      string
	reqs, resps int
	run         func(ctx context.Context, c testpb.TestServiceClient, opts ...grpc.CallOption) error
}

var callKinds = []callKind{
	{name: "unary", method: unaryMethod, reqs: 1, resps: 1, run: runUnary},
	{name: "client-stream", method: clientStreamMethod, reqs: 3, resps: 1, run: runClientStream},
	{name: "server-stream", method: serverStreamMethod, reqs: 1, resps: 3, run: runServerStream},
	{name: "bidi", method: bidiMethod, reqs: 3, resps: 3, run: runBidi},
}

func runUnary(ctx context.Context, c testpb.TestServiceClient, opts ...grpc.CallOption) error {
	resp, err := c.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("unary")}}, opts...)
	if err != nil {
		return err
	}
	if got := string(resp.GetPayload().GetBody()); got != "unary" {
		return errors.New("unary: got payload " + got)
	}
	return nil
}

func runClientStream(ctx context.Context, c testpb.TestServiceClient, opts ...grpc.CallOption) error {
	s, err := c.StreamingInputCall(ctx, opts...)
	if err != nil {
		return err
	}
	for _, n := range []int{1, 10, 100} {
		if err := s.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, n)}}); err != nil {
			break // the status comes from CloseAndRecv
		}
	}
	resp, err := s.CloseAndRecv()
	if err != nil {
		return err
	}
	if resp.GetAggregatedPayloadSize() != 111 {
		return status.Errorf(codes.DataLoss, "client stream: got size %d, want 111", resp.GetAggregatedPayloadSize())
	}
	return nil
}

func runServerStream(ctx context.Context, c testpb.TestServiceClient, opts ...grpc.CallOption) error {
	s, err := c.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
		ResponseParameters: []*testpb.ResponseParameters{{Size: 1}, {Size: 2}, {Size: 3}},
	}, opts...)
	if err != nil {
		return err
	}
	for i := 1; ; i++ {
		m, err := s.Recv()
		if err == io.EOF {
			if i != 4 {
				return status.Errorf(codes.DataLoss, "server stream: got %d messages, want 3", i-1)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if len(m.GetPayload().GetBody()) != i {
			return status.Errorf(codes.DataLoss, "server stream: message %d has %d bytes", i, len(m.GetPayload().GetBody()))
		}
	}
}

func runBidi(ctx context.Context, c testpb.TestServiceClient, opts ...grpc.CallOption) error {
	s, err := c.FullDuplexCall(ctx, opts...)
	if err != nil {
		return err
	}
	for i := range 3 {
		body := []byte{byte('a' + i)}
		if err := s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			break // the status comes from Recv
		}
		m, err := s.Recv()
		if err != nil {
			return err
		}
		if string(m.GetPayload().GetBody()) != string(body) {
			return status.Errorf(codes.DataLoss, "bidi: got %q, want %q", m.GetPayload().GetBody(), body)
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	if _, err := s.Recv(); err != io.EOF {
		if err == nil {
			return status.Error(codes.DataLoss, "bidi: unexpected extra message")
		}
		return err
	}
	return nil
}

// wantsPanic reports whether the client asked the test filters to panic.
func wantsPanic(call *pipeline.Call) bool { return len(call.Inbound.Get("x-panic")) > 0 }

// withPanic asks the test filters of the call made with ctx to panic.
func withPanic(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "x-panic", "1")
}
