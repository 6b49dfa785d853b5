package route_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestDeadlinePropagates: the backend's deadline is no later than the
// client's.
func TestDeadlinePropagates(t *testing.T) {
	got := make(chan time.Time, 1)
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			d, ok := ctx.Deadline()
			if !ok {
				return nil, status.Error(codes.FailedPrecondition, "no deadline")
			}
			got <- d
			return &testpb.SimpleResponse{}, nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	clientDeadline, _ := ctx.Deadline()
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if d := <-got; d.After(clientDeadline) {
		t.Errorf("backend deadline %v is after the client's %v", d, clientDeadline)
	}
}

// TestDeadlineExceededInUpstream: a backend slower than the deadline gives
// the client DeadlineExceeded, and the backend sees its context end.
func TestDeadlineExceededInUpstream(t *testing.T) {
	ended := make(chan struct{})
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			<-ctx.Done()
			close(ended)
			return nil, ctx.Err()
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	<-ended
}

// TestCancelReachesBackend: a client cancel reaches the backend's handler
// within a second, for a stream in progress.
func TestCancelReachesBackend(t *testing.T) {
	started := make(chan struct{})
	canceled := make(chan struct{})
	svc := &testbackend.Service{
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error {
			close(started)
			<-s.Context().Done()
			close(canceled)
			return s.Context().Err()
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	s, err := env.Client.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(&testpb.StreamingOutputCallRequest{}); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	select {
	case <-canceled:
	case <-time.After(time.Second):
		t.Fatal("backend did not see the client's cancel within 1s")
	}
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("client Recv = %v, want Canceled", err)
	}
}

// TestBackendKilledMidStream: the backend dies after sending one message;
// the client gets that message, then UNAVAILABLE.
func TestBackendKilledMidStream(t *testing.T) {
	sent := make(chan struct{})
	svc := &testbackend.Service{
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			if err := s.Send(&testpb.StreamingOutputCallResponse{}); err != nil {
				return err
			}
			close(sent)
			<-s.Context().Done()
			return nil
		},
	}
	addr, backend := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := env.Client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	<-sent
	backend.Stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv after the backend died = %v, want Unavailable", err)
	}
}

// TestNothingListening: an upstream with nothing listening fails calls with
// UNAVAILABLE well before their deadline.
func TestNothingListening(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	env := proxytest.Start(t, addr, proxytest.Config{})
	for _, kind := range []string{"unary", "stream"} {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		var err error
		if kind == "unary" {
			_, err = env.Client.UnaryCall(ctx, &testpb.SimpleRequest{})
		} else {
			var s testpb.TestService_FullDuplexCallClient
			if s, err = env.Client.FullDuplexCall(ctx); err == nil {
				_, err = s.Recv()
			}
		}
		cancel()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s: err = %v, want Unavailable", kind, err)
		}
	}
}

// TestSilentUpstream: an address that accepts TCP and never speaks HTTP/2
// fails calls with UNAVAILABLE after the cluster's connect timeout, before
// the call's deadline.
func TestSilentUpstream(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		lis.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	cfg := proxytest.Config{}
	cfg.Cluster.ConnectTimeout = 300 * time.Millisecond
	env := proxytest.Start(t, lis.Addr().String(), cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("err = %v, want Unavailable", err)
	}
}

// TestManyConcurrentStreams holds 1,000 streams open at once on one client
// connection through the proxy, each exchanging messages.
func TestManyConcurrentStreams(t *testing.T) {
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const n = 1000
	streams := make([]testpb.TestService_FullDuplexCallClient, n)
	for i := range streams {
		s, err := env.Client.FullDuplexCall(ctx)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		streams[i] = s
	}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i, s := range streams {
		wg.Add(1)
		go func(i int, s testpb.TestService_FullDuplexCallClient) {
			defer wg.Done()
			body := []byte{byte(i), byte(i >> 8)}
			for j := 0; j < 3; j++ {
				if err := s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: body}}); err != nil {
					errs <- err
					return
				}
				m, err := s.Recv()
				if err != nil {
					errs <- err
					return
				}
				if string(m.GetPayload().GetBody()) != string(body) {
					errs <- status.Errorf(codes.DataLoss, "stream %d got %x", i, m.GetPayload().GetBody())
					return
				}
			}
		}(i, s)
	}
	wg.Wait()
	for _, s := range streams {
		if err := s.CloseSend(); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("stream end: %v", err)
		}
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
