package ratelimit_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// countingBackend starts a backend that counts the unary calls it serves.
func countingBackend(t *testing.T) (string, *atomic.Int64) {
	var n atomic.Int64
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
			n.Add(1)
			return &testgrpc.SimpleResponse{}, nil
		},
	})
	return addr, &n
}

// fakeAuth stands in for the auth filter: it stores the claim sub from the
// x-test-sub header.
var fakeAuth = pipeline.RequestHeadersFunc("fake-auth", func(_ context.Context, call *pipeline.Call) error {
	if v := call.Inbound.Get("x-test-sub"); len(v) > 0 {
		pipeline.ClaimsKey.Set(call, pipeline.Claims{"sub": v[0]})
	}
	return nil
})

// unary makes one call through the proxy with the given headers and
// returns its trailers and error.
func unary(t *testing.T, env *proxytest.Env, kv ...string) (metadata.MD, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, kv...)
	var trailer metadata.MD
	_, err := env.Client.UnaryCall(ctx, &testgrpc.SimpleRequest{}, grpc.Trailer(&trailer))
	return trailer, err
}

// TestProxy: through a real proxy, calls past the burst are refused before
// the upstream with RESOURCE_EXHAUSTED, a RetryInfo detail and a
// retry-after trailer; each subject has its own bucket; buckets refill.
func TestProxy(t *testing.T) {
	t.Parallel()
	backend, served := countingBackend(t)
	clk := newClock()
	f := newFilter(t, ratelimit.Config{Rate: 0.4, Burst: 2, Key: "claim:sub"}, clk)
	env := proxytest.Start(t, backend, proxytest.Config{Filters: []pipeline.Filter{fakeAuth, f}})

	for i := range 2 {
		if _, err := unary(t, env, "x-test-sub", "alice"); err != nil {
			t.Fatalf("alice's call %d: %v", i, err)
		}
	}
	trailer, err := unary(t, env, "x-test-sub", "alice")
	st := status.Convert(err)
	if st.Code() != codes.ResourceExhausted || st.Message() != "rate_limit: rate limit exceeded" {
		t.Fatalf("third call: %v %q", st.Code(), st.Message())
	}
	var info *errdetails.RetryInfo
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			info = ri
		}
	}
	if info == nil || info.GetRetryDelay().AsDuration() != 2500*time.Millisecond {
		t.Fatalf("RetryInfo %v, want a delay of 2.5s (one token at 0.4/s)", info)
	}
	if got := trailer.Get(ratelimit.RetryAfterKey); len(got) != 1 || got[0] != "3" {
		t.Fatalf("retry-after trailer %q, want [3] (2.5s rounded up)", got)
	}
	if n := served.Load(); n != 2 {
		t.Fatalf("backend served %d calls, want 2: a refused call must not reach it", n)
	}

	// Bob has a bucket of his own; callers without a subject share one.
	for i := range 2 {
		if _, err := unary(t, env, "x-test-sub", "bob"); err != nil {
			t.Fatalf("bob's call %d: %v", i, err)
		}
		if _, err := unary(t, env); err != nil {
			t.Fatalf("anonymous call %d: %v", i, err)
		}
	}
	if _, err := unary(t, env); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("third anonymous call: %v", err)
	}

	// A stream is one call: refused at its start like a unary call.
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "x-test-sub", "alice"), 20*time.Second)
	defer cancel()
	stream, err := env.Client.FullDuplexCall(ctx)
	if err == nil {
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("alice's stream: %v", err)
	}

	// 2.5 seconds later alice has one token again, and one only.
	clk.advance(2500 * time.Millisecond)
	if _, err := unary(t, env, "x-test-sub", "alice"); err != nil {
		t.Fatalf("alice after the refill: %v", err)
	}
	if _, err := unary(t, env, "x-test-sub", "alice"); status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("alice's second call after the refill: %v", err)
	}
	if n := served.Load(); n != 7 {
		t.Fatalf("backend served %d calls, want 7", n)
	}
}

// TestProxyPeer: every call from one client IP shares the bucket, whatever
// the connection.
func TestProxyPeer(t *testing.T) {
	t.Parallel()
	backend, served := countingBackend(t)
	f := newFilter(t, ratelimit.Config{Rate: 1, Burst: 3, Key: "peer"}, newClock())
	env := proxytest.Start(t, backend, proxytest.Config{Filters: []pipeline.Filter{f}})
	other := testgrpc.NewTestServiceClient(proxytest.Dial(t, env.ProxyAddr))

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var codesSeen []codes.Code
	for i := range 4 {
		c := env.Client
		if i%2 == 1 {
			c = other
		}
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{})
		codesSeen = append(codesSeen, status.Code(err))
	}
	want := []codes.Code{codes.OK, codes.OK, codes.OK, codes.ResourceExhausted}
	for i := range want {
		if codesSeen[i] != want[i] {
			t.Fatalf("codes %v, want %v", codesSeen, want)
		}
	}
	if n := served.Load(); n != 3 {
		t.Fatalf("backend served %d, want 3", n)
	}
	if n := f.Keys(); n != 1 {
		t.Fatalf("%d buckets, want 1 (127.0.0.1)", n)
	}
}
