package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/methodkind"
)

func hosts(v *clusterpb.VersionResponse) string {
	var out []string
	for _, item := range v.GetMessages() {
		out = append(out, item.GetMetadata().GetHostname())
	}
	return fmt.Sprint(out)
}

// TestNodesSubset: the nodes header picks targets and their order, in
// comma-separated or repeated form; it is not forwarded upstream.
func TestNodesSubset(t *testing.T) {
	var mu sync.Mutex
	var forwarded []string
	g := startGroup(t, 4, func(i int, m *machine) {
		m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			forwarded = append(forwarded, md.Get("nodes")...)
			mu.Unlock()
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: m.name}}}, nil
		}
	}, fanout.Config{})
	for _, tc := range []struct {
		md   metadata.MD
		want string
	}{
		{metadata.Pairs("nodes", "n2,n0"), "[n2 n0]"},
		{metadata.Pairs("nodes", " n3 , n1 "), "[n3 n1]"},
		{metadata.Pairs("nodes", "n1", "nodes", "n3"), "[n1 n3]"},
		{metadata.Pairs("nodes", "n1,n1,n2"), "[n1 n2]"},
		{nil, "[n0 n1 n2 n3]"},
	} {
		ctx := metadata.NewOutgoingContext(callCtx(t), tc.md)
		v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hosts(v); got != tc.want {
			t.Errorf("nodes %v: got %s, want %s", tc.md.Get("nodes"), got, tc.want)
		}
	}
	if len(forwarded) > 0 {
		t.Errorf("the nodes header reached members: %q", forwarded)
	}
}

// TestBadTargets: unknown names, empty selections and too many targets are
// INVALID_ARGUMENT, naming the problem; no member is called.
func TestBadTargets(t *testing.T) {
	var calls sync.Map
	g := startGroup(t, 3, func(i int, m *machine) {
		m.version = func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			calls.Store(m.name, true)
			return &clusterpb.VersionResponse{}, nil
		}
	}, fanout.Config{MaxTargets: 2})
	for _, tc := range []struct {
		nodes, want string
	}{
		{"n0,10.0.0.1:50000", `"10.0.0.1:50000" is not a member`},
		{"bogus", `"bogus" is not a member`},
		{" , ", "names no target"},
		{"n0,n1,n2", "more than 2 targets"},
	} {
		ctx := metadata.AppendToOutgoingContext(callCtx(t), "nodes", tc.nodes)
		_, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
		if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), tc.want) {
			t.Errorf("nodes %q: %v, want InvalidArgument with %q", tc.nodes, err, tc.want)
		}
	}
	// All three members exceed MaxTargets too.
	if _, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("all members over the limit: %v", err)
	}
	calls.Range(func(k, _ any) bool {
		t.Errorf("member %v was called", k)
		return true
	})
}

// TestMaxResponseSize: a merged answer over the cap is RESOURCE_EXHAUSTED.
func TestMaxResponseSize(t *testing.T) {
	g := startGroup(t, 3, func(i int, m *machine) {
		m.version = func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: strings.Repeat("x", 400)}}}, nil
		}
	}, fanout.Config{MaxResponseSize: 1000})
	_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if status.Code(err) != codes.ResourceExhausted {
		t.Errorf("err = %v, want ResourceExhausted", err)
	}
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "nodes", "n0,n1")
	if _, err := g.client.Version(ctx, &clusterpb.VersionRequest{}); err != nil {
		t.Errorf("two members fit: %v", err)
	}
}

// TestPolicies: first answers with the first success and cancels the rest;
// quorum answers once N succeeded, or fails when N cannot succeed.
func TestPolicies(t *testing.T) {
	started := make(chan string, 10)
	cancelled := make(chan string, 10)
	// loserCancelled checks that the hanging member, if its call started
	// before the answer, was cancelled.
	loserCancelled := func(t *testing.T) {
		t.Helper()
		select {
		case <-started:
		default:
			return // the proxy cancelled it before its handler ran
		}
		select {
		case <-cancelled:
		case <-time.After(5 * time.Second):
			t.Error("the hanging member was not cancelled")
		}
	}
	mk := func(i int, m *machine) {
		m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			switch i {
			case 0: // hangs until cancelled
				started <- m.name
				<-ctx.Done()
				cancelled <- m.name
				return nil, ctx.Err()
			case 1:
				return nil, status.Error(codes.Internal, "broken")
			}
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: m.name}}}, nil
		}
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			switch i {
			case 0:
				started <- m.name
				<-s.Context().Done()
				cancelled <- m.name
				return s.Context().Err()
			case 1:
				return status.Error(codes.Internal, "broken")
			}
			return s.Send(&clusterpb.LogLine{Text: m.name})
		}
	}
	parse := func(s string) fanout.Policy {
		p, err := fanout.ParsePolicy(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("first", func(t *testing.T) {
		g := startGroup(t, 4, mk, fanout.Config{Policy: parse("first")})
		v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if got := hosts(v); got != "[n2]" && got != "[n3]" {
			t.Errorf("first: %s, want one winner", got)
		}
		loserCancelled(t)
		s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for {
			line, err := s.Recv()
			if err != nil {
				break
			}
			texts = append(texts, line.GetMetadata().GetHostname())
		}
		if len(texts) != 1 || (texts[0] != "n2" && texts[0] != "n3") {
			t.Errorf("first stream: %v, want one winner and no error items", texts)
		}
		loserCancelled(t)
	})
	t.Run("quorum:2", func(t *testing.T) {
		g := startGroup(t, 4, mk, fanout.Config{Policy: parse("quorum:2")})
		v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		// n1 may or may not have failed before the quorum; n0 never ends.
		if got := hosts(v); got != "[n1 n2 n3]" && got != "[n2 n3]" {
			t.Errorf("quorum:2: %s", got)
		}
		loserCancelled(t)
	})
	t.Run("quorum:3 unreachable", func(t *testing.T) {
		g := startGroup(t, 3, mk, fanout.Config{Policy: parse("quorum:3")})
		_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "quorum of 3") {
			t.Errorf("err = %v, want Unavailable quorum", err)
		}
		loserCancelled(t)
	})
	for _, bad := range []string{"quorum:0", "quorum:x", "some"} {
		if _, err := fanout.ParsePolicy(bad); err == nil {
			t.Errorf("ParsePolicy(%q) succeeded", bad)
		}
	}
}

// TestCancelReachesAllMembers: a client cancel reaches every member of a
// stream in progress within a second.
func TestCancelReachesAllMembers(t *testing.T) {
	const n = 5
	started := make(chan struct{}, n)
	done := make(chan string, n)
	g := startGroup(t, n, func(i int, m *machine) {
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			started <- struct{}{}
			<-s.Context().Done()
			done <- m.name
			return nil
		}
	}, fanout.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := g.client.Logs(ctx, &clusterpb.LogsRequest{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		<-started
	}
	cancel()
	timeout := time.After(time.Second)
	for i := 0; i < n; i++ {
		select {
		case <-done:
		case <-timeout:
			t.Fatalf("only %d of %d members saw the cancel within 1s", i, n)
		}
	}
}

// TestKindSources: the method kind comes from a protoset file or from the
// members' server reflection; an unknown kind is a clear error, never a
// guess.
func TestKindSources(t *testing.T) {
	path := proxytest.WriteProtoset(t, clusterpb.File_cluster_proto)
	ps, err := methodkind.LoadProtoset(path)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("protoset", func(t *testing.T) {
		g := startGroup(t, 2, nil, fanout.Config{Kinds: ps})
		checkKinds(t, g)
	})
	t.Run("reflection", func(t *testing.T) {
		var addrs []string
		for i := 0; i < 2; i++ {
			addrs = append(addrs, serveMachineReflecting(t, &machine{name: nodeName(i)}))
		}
		// No Kinds: the terminal asks the members' reflection.
		checkKinds(t, startProxyWith(t, addrs, fanout.Config{}))
	})
	t.Run("unknown", func(t *testing.T) {
		g := startGroup(t, 2, nil, fanout.Config{Kinds: methodkind.Patterns{}})
		_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if st := status.Convert(err); st.Code() != codes.Unimplemented || !strings.Contains(st.Message(), "/manifold.cluster.v1.Machine/Version") {
			t.Errorf("err = %v, want Unimplemented naming the method", err)
		}
	})
}

func checkKinds(t *testing.T, g *group) {
	t.Helper()
	v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts(v); got != "[n0 n1]" {
		t.Errorf("Version: %s", got)
	}
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{Lines: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
		n++
	}
	if n != 4 {
		t.Errorf("Logs: %d lines, want 4", n)
	}
}

// serveMachineReflecting serves m with server reflection (v1 and v1alpha).
func serveMachineReflecting(t *testing.T, m clusterpb.MachineServer) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	clusterpb.RegisterMachineServer(srv, m)
	reflection.Register(srv)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestFirstWithFailFast: under first, the members the policy cancels are
// not failures, so fail_fast does not turn their cancellation into the
// call's status.
func TestFirstWithFailFast(t *testing.T) {
	g := startGroup(t, 3, func(i int, m *machine) {
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			if i != 0 {
				<-s.Context().Done()
				return s.Context().Err()
			}
			return s.Send(&clusterpb.LogLine{Text: m.name})
		}
	}, fanout.Config{Policy: fanout.Policy{Mode: fanout.First}, FailFast: true})
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	line, err := s.Recv()
	if err != nil || line.GetText() != "n0" {
		t.Fatalf("first message: %v %v", line, err)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatalf("end: %v, want OK", err)
	}
}

// TestQuorumLargerThanTargets: a quorum the selected targets can never
// reach is refused before any member is called.
func TestQuorumLargerThanTargets(t *testing.T) {
	var calls atomic.Int32
	g := startGroup(t, 3, func(i int, m *machine) {
		m.version = func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			calls.Add(1)
			return &clusterpb.VersionResponse{}, nil
		}
	}, fanout.Config{Policy: fanout.Policy{Mode: fanout.Quorum, Quorum: 3}})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "nodes", "n0,n2")
	_, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
	if st := status.Convert(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "quorum of 3") {
		t.Errorf("err = %v, want InvalidArgument", err)
	}
	if calls.Load() != 0 {
		t.Errorf("%d members were called", calls.Load())
	}
}

// TestFailFastKeepsTrailers: the call's status comes from the failing
// member, with the trailers it sent.
func TestFailFastKeepsTrailers(t *testing.T) {
	g := startGroup(t, 1, func(i int, m *machine) {
		m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			_ = grpc.SetTrailer(ctx, metadata.Pairs("x-why", "disk"))
			return nil, status.Error(codes.Internal, "broken")
		}
	}, fanout.Config{FailFast: true})
	var trailer metadata.MD
	_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{}, grpc.Trailer(&trailer))
	if status.Code(err) != codes.Internal || len(trailer.Get("x-why")) != 1 {
		t.Errorf("err %v, trailer %v", err, trailer)
	}
}
