package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

const panicValue = "secret panic value"

// TestFilterPanic panics in each kind of hook when the client asks for it.
// The client gets Internal without the panic's text, the chain's logger
// records the filter, hook, panic and stack, an outer filter's end hook sees
// Internal, and the next call through the same proxy succeeds.
func TestFilterPanic(t *testing.T) {
	t.Parallel()
	tests := []struct {
		hook   string
		filter pipeline.Filter
	}{
		{"OnRequestHeaders", &pipeline.Funcs{FilterName: "bomb", RequestHeaders: func(_ context.Context, call *pipeline.Call) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return nil
		}}},
		{"OnRequestMessage", &pipeline.Funcs{FilterName: "bomb", RequestMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return nil
		}}},
		{"OnRequestEnd", &pipeline.Funcs{FilterName: "bomb", RequestEnd: func(_ context.Context, call *pipeline.Call) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return nil
		}}},
		{"OnResponseHeaders", &pipeline.Funcs{FilterName: "bomb", ResponseHeaders: func(_ context.Context, call *pipeline.Call, _ metadata.MD) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return nil
		}}},
		{"OnResponseMessage", &pipeline.Funcs{FilterName: "bomb", ResponseMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return nil
		}}},
		{"OnResponseEnd", &pipeline.Funcs{FilterName: "bomb", ResponseEnd: func(_ context.Context, call *pipeline.Call, _ *pipeline.End) {
			if wantsPanic(call) {
				panic(panicValue)
			}
		}}},
		{"Around", pipeline.AroundFunc("bomb", func(call *pipeline.Call, stream pipeline.ServerStream, next pipeline.Handler) error {
			if wantsPanic(call) {
				panic(panicValue)
			}
			return next.Serve(call, stream)
		})},
	}
	for _, tt := range tests {
		t.Run(tt.hook, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			logs := &logCapture{}
			outer := &endRecorder{name: "outer"}
			client := chainProxy(t, addr, []pipeline.Filter{outer, tt.filter}, nil, slog.New(logs))

			ctx := callCtx(t)
			err := runClientStream(withPanic(ctx), client)
			if status.Code(err) != codes.Internal {
				t.Fatalf("panicking call: %v, want Internal", err)
			}
			if strings.Contains(err.Error(), panicValue) {
				t.Errorf("client error %q reveals the panic value", err)
			}
			if got := outer.statuses(); len(got) != 1 || got[0].Code() != codes.Internal {
				t.Errorf("outer end hook saw %v, want once Internal", got)
			}

			var found bool
			for _, r := range logs.snapshot() {
				if r.attrs["filter"] != "bomb" {
					continue
				}
				found = true
				if r.attrs["hook"] != tt.hook || r.attrs["panic"] != panicValue || !strings.Contains(r.attrs["stack"], "panic_test.go") {
					t.Errorf("log record %q %v: want hook %s, the panic value and a stack through the filter", r.msg, r.attrs, tt.hook)
				}
			}
			if !found {
				t.Errorf("no log record names the filter; logs: %v", logs.snapshot())
			}

			if err := runClientStream(ctx, client); err != nil {
				t.Errorf("call after the panic: %v", err)
			}
		})
	}
}

// TestTerminalPanicReachesEndHooks panics in the terminal: the filters'
// response end hooks still run, as ResponseEndHook promises for every call
// that reached the filter, and the client gets Internal.
func TestTerminalPanicReachesEndHooks(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	outer := &endRecorder{name: "outer"}
	logs := &logCapture{}
	client := chainProxy(t, addr, []pipeline.Filter{outer}, func(*cluster.Cluster) pipeline.Handler {
		return pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
			panic(panicValue)
		})
	}, slog.New(logs))
	err := runUnary(callCtx(t), client)
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), panicValue) {
		t.Fatalf("call: %v, want Internal without the panic value", err)
	}
	if got := outer.statuses(); len(got) != 1 || got[0].Code() != codes.Internal {
		t.Errorf("outer end hook saw %v, want once Internal", got)
	}
	// The panic went on up and was recovered and logged once, by the
	// server.
	var panics int
	for _, r := range logs.snapshot() {
		if r.attrs["panic"] == panicValue {
			panics++
		}
	}
	if panics != 1 {
		t.Errorf("panic logged %d times, want once: %v", panics, logs.snapshot())
	}
}
