package cluster_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

const (
	unaryMethod        = "/grpc.testing.TestService/UnaryCall"
	clientStreamMethod = "/grpc.testing.TestService/StreamingInputCall"
	testService        = "grpc.testing.TestService"
)

// flakyBackend fails the first attempts of every call, and records the
// request messages each attempt received, by the "call-id" metadata.
type flakyBackend struct {
	addr  string
	fails int        // attempts of each call that fail
	code  codes.Code // with this code

	mu       sync.Mutex
	attempts map[string][][][]byte // call id → attempts → message bodies
}

func startFlakyBackend(t *testing.T, fails int, code codes.Code) *flakyBackend {
	t.Helper()
	b := &flakyBackend{fails: fails, code: code, attempts: map[string][][][]byte{}}
	b.addr, _ = testbackend.Start(t, &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := b.attempt(ctx, [][]byte{req.GetPayload().GetBody()}); err != nil {
				return nil, err
			}
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
		ClientStream: func(stream testpb.TestService_StreamingInputCallServer) error {
			var bodies [][]byte
			var total int32
			for {
				m, err := stream.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					return err
				}
				bodies = append(bodies, m.GetPayload().GetBody())
				total += int32(len(m.GetPayload().GetBody()))
			}
			// Fail only after the whole request arrived: the retry must
			// replay every message, and the half-close.
			if err := b.attempt(stream.Context(), bodies); err != nil {
				return err
			}
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: total})
		},
	})
	return b
}

// attempt records one attempt's messages and fails it while the call has
// made no more than fails attempts.
func (b *flakyBackend) attempt(ctx context.Context, bodies [][]byte) error {
	md, _ := metadata.FromIncomingContext(ctx)
	id := strings.Join(md.Get("call-id"), ",")
	b.mu.Lock()
	b.attempts[id] = append(b.attempts[id], bodies)
	n := len(b.attempts[id])
	b.mu.Unlock()
	if n <= b.fails {
		return status.Errorf(b.code, "attempt %d fails", n)
	}
	return nil
}

// received returns the message bodies of each attempt of a call.
func (b *flakyBackend) received(id string) [][][]byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.attempts[id]
}

// randomBodies returns n random message bodies of size bytes each.
func randomBodies(t *testing.T, n, size int) [][]byte {
	t.Helper()
	bodies := make([][]byte, n)
	for i := range bodies {
		bodies[i] = make([]byte, size)
		if _, err := rand.Read(bodies[i]); err != nil {
			t.Fatal(err)
		}
	}
	return bodies
}

// callKind makes one call of some kind through client with the given
// request bodies and returns its error.
type callKind func(ctx context.Context, client testpb.TestServiceClient, bodies [][]byte) error

func unaryCall(ctx context.Context, client testpb.TestServiceClient, bodies [][]byte) error {
	resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{Payload: &testpb.Payload{Body: bodies[0]}})
	if err == nil && !bytes.Equal(resp.GetPayload().GetBody(), bodies[0]) {
		return fmt.Errorf("response differs from the request")
	}
	return err
}

func clientStreamCall(ctx context.Context, client testpb.TestServiceClient, bodies [][]byte) error {
	stream, err := client.StreamingInputCall(ctx)
	if err != nil {
		return err
	}
	want := 0
	for _, body := range bodies {
		want += len(body)
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
			break // the status comes from CloseAndRecv
		}
	}
	resp, err := stream.CloseAndRecv()
	if err == nil && int(resp.GetAggregatedPayloadSize()) != want {
		return fmt.Errorf("aggregated size %d, want %d", resp.GetAggregatedPayloadSize(), want)
	}
	return err
}

// TestRetry: a call to a method with a retry policy whose first attempt
// fails with UNAVAILABLE succeeds through the proxy on the second attempt,
// and the backend receives identical request bytes on both: grpc-go's
// replay buffer keeps the proxy's pooled request frames alive until the
// retry has re-sent them. Concurrent calls with distinct random payloads
// would show any buffer recycled too early.
func TestRetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		methods  []string
		call     callKind
		messages int
		size     int
	}{
		{"unary by method name", []string{unaryMethod}, unaryCall, 1, 64 << 10},
		{"unary by service name", []string{testService}, unaryCall, 1, 64 << 10},
		{"client streaming by method name", []string{clientStreamMethod}, clientStreamCall, 4, 32 << 10},
		{"client streaming by service name", []string{testService}, clientStreamCall, 4, 32 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backend := startFlakyBackend(t, 1, codes.Unavailable)
			env := proxytest.Start(t, backend.addr, proxytest.Config{Cluster: cluster.Config{
				Retry: []cluster.RetryPolicy{{Methods: tt.methods, InitialBackoff: 20 * time.Millisecond}},
			}})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()

			const calls = 8
			sent := make([][][]byte, calls)
			var wg sync.WaitGroup
			for i := range calls {
				sent[i] = randomBodies(t, tt.messages, tt.size)
				wg.Go(func() {
					callCtx := metadata.AppendToOutgoingContext(ctx, "call-id", fmt.Sprint(i))
					if err := tt.call(callCtx, env.Client, sent[i]); err != nil {
						t.Errorf("call %d: %v", i, err)
					}
				})
			}
			wg.Wait()
			for i := range calls {
				got := backend.received(fmt.Sprint(i))
				if len(got) != 2 {
					t.Errorf("call %d: backend saw %d attempts, want 2", i, len(got))
					continue
				}
				for a, bodies := range got {
					if len(bodies) != len(sent[i]) {
						t.Errorf("call %d attempt %d: %d messages, want %d", i, a+1, len(bodies), len(sent[i]))
						continue
					}
					for m := range bodies {
						if !bytes.Equal(bodies[m], sent[i][m]) {
							t.Errorf("call %d attempt %d: message %d differs from the one sent", i, a+1, m)
						}
					}
				}
			}
		})
	}
}

// TestRetryLimits: what is not retried, and how far retries go.
func TestRetryLimits(t *testing.T) {
	t.Parallel()
	const always = 100 // the backend fails every attempt
	tests := []struct {
		name         string
		cfg          cluster.Config
		fails        int
		code         codes.Code
		size         int
		wantAttempts int
		wantCode     codes.Code
	}{
		{"off by default", cluster.Config{}, 1, codes.Unavailable, 10, 1, codes.Unavailable},
		{"other method", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{clientStreamMethod}}}},
			1, codes.Unavailable, 10, 1, codes.Unavailable},
		{"other service", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{"grpc.testing.OtherService"}}}},
			1, codes.Unavailable, 10, 1, codes.Unavailable},
		{"code not retryable by default", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}}}},
			1, codes.Internal, 10, 1, codes.Internal},
		{"code listed", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}, RetryableStatusCodes: []string{"internal", "UNAVAILABLE"}}}},
			1, codes.Internal, 10, 2, codes.OK},
		{"request larger than the retry buffer", cluster.Config{RetryBufferSize: 1 << 10, Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}}}},
			1, codes.Unavailable, 64 << 10, 1, codes.Unavailable},
		{"request within the retry buffer", cluster.Config{RetryBufferSize: 1 << 20, Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}}}},
			1, codes.Unavailable, 512 << 10, 2, codes.OK},
		{"default max_attempts 3", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}, InitialBackoff: time.Millisecond}}},
			always, codes.Unavailable, 10, 3, codes.Unavailable},
		{"max_attempts 5", cluster.Config{Retry: []cluster.RetryPolicy{{Methods: []string{unaryMethod}, MaxAttempts: 5, InitialBackoff: time.Millisecond}}},
			always, codes.Unavailable, 10, 5, codes.Unavailable},
		{"method wins over its service", cluster.Config{Retry: []cluster.RetryPolicy{
			{Methods: []string{testService}, MaxAttempts: 5, InitialBackoff: time.Millisecond},
			{Methods: []string{unaryMethod}, MaxAttempts: 2, InitialBackoff: time.Millisecond},
		}}, always, codes.Unavailable, 10, 2, codes.Unavailable},
		// Tokens start at 4; each failure takes one; at 2 (= 4/2) retries
		// stop: the first attempt fails (3 left) and is retried, the second
		// fails (2 left) and is not.
		{"throttled", cluster.Config{
			Retry:           []cluster.RetryPolicy{{Methods: []string{unaryMethod}, MaxAttempts: 5, InitialBackoff: time.Millisecond}},
			RetryThrottling: &cluster.RetryThrottling{MaxTokens: 4, TokenRatio: 1},
		}, always, codes.Unavailable, 10, 2, codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			backend := startFlakyBackend(t, tt.fails, tt.code)
			env := proxytest.Start(t, backend.addr, proxytest.Config{Cluster: tt.cfg})
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			ctx = metadata.AppendToOutgoingContext(ctx, "call-id", "1")
			err := unaryCall(ctx, env.Client, randomBodies(t, 1, tt.size))
			if status.Code(err) != tt.wantCode {
				t.Errorf("call: %v, want code %v", err, tt.wantCode)
			}
			if got := len(backend.received("1")); got != tt.wantAttempts {
				t.Errorf("backend saw %d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}
}

// TestRetryWithBreaker: the attempts of one call hold one circuit breaker
// slot.
func TestRetryWithBreaker(t *testing.T) {
	t.Parallel()
	backend := startFlakyBackend(t, 2, codes.Unavailable)
	env := proxytest.Start(t, backend.addr, proxytest.Config{Cluster: cluster.Config{
		CircuitBreakers: cluster.CircuitBreakers{MaxRequests: 1},
		Retry:           []cluster.RetryPolicy{{Methods: []string{unaryMethod}, InitialBackoff: time.Millisecond}},
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "call-id", "1")
	if err := unaryCall(ctx, env.Client, randomBodies(t, 1, 10)); err != nil {
		t.Fatalf("call: %v", err)
	}
	if got := len(backend.received("1")); got != 3 {
		t.Errorf("backend saw %d attempts, want 3", got)
	}
	if c, p := env.Cluster.InFlight(); c != 0 || p != 0 {
		t.Errorf("InFlight() = %d, %d after the call, want 0, 0", c, p)
	}
}
