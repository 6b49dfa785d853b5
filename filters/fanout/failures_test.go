package fanout_test

import (
	"context"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// failure is how a member fails.
type failure int

const (
	healthy failure = iota
	beforeHeaders
	afterHeaders
)

// TestUnaryFailures: one, several and all members failing, before and after
// sending headers. Failing members become error items with their status;
// the others answer; the call is OK.
func TestUnaryFailures(t *testing.T) {
	cases := []struct {
		name  string
		modes []failure
	}{
		{"one before headers", []failure{healthy, beforeHeaders, healthy}},
		{"one after headers", []failure{afterHeaders, healthy, healthy}},
		{"several", []failure{beforeHeaders, healthy, afterHeaders}},
		{"all", []failure{afterHeaders, beforeHeaders, afterHeaders}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := startGroup(t, len(tc.modes), func(i int, m *machine) {
				mode := tc.modes[i]
				m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
					if mode == afterHeaders {
						if err := grpc.SendHeader(ctx, metadata.Pairs("early", m.name)); err != nil {
							return nil, err
						}
					}
					if mode != healthy {
						st, _ := status.New(codes.NotFound, m.name+" has no version").WithDetails(&clusterpb.Version{Tag: "detail"})
						return nil, st.Err()
					}
					return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: m.name}}}, nil
				}
			}, fanout.Config{})
			var header metadata.MD
			v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{}, grpc.Header(&header))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.GetMessages()) != len(tc.modes) {
				t.Fatalf("%d items, want %d", len(v.GetMessages()), len(tc.modes))
			}
			for i, item := range v.GetMessages() {
				md := item.GetMetadata()
				if md.GetHostname() != nodeName(i) {
					t.Errorf("item %d from %q", i, md.GetHostname())
				}
				if tc.modes[i] == healthy {
					if item.GetNode() != nodeName(i) || md.GetError() != "" {
						t.Errorf("healthy item %d = %v", i, item)
					}
					continue
				}
				if item.GetNode() != "" || item.GetTag() != "" {
					t.Errorf("error item %d has payload fields: %v", i, item)
				}
				st := md.GetStatus()
				if st.GetCode() != int32(codes.NotFound) || st.GetMessage() != nodeName(i)+" has no version" || len(st.GetDetails()) != 1 {
					t.Errorf("error item %d status = %v", i, st)
				}
				if !strings.Contains(md.GetError(), "has no version") {
					t.Errorf("error item %d error = %q", i, md.GetError())
				}
			}
			for i, mode := range tc.modes {
				found := false
				for _, v := range header.Get("early") {
					found = found || v == nodeName(i)
				}
				if found != (mode == afterHeaders) {
					t.Errorf("header early from %s present=%v, want %v (header %v)", nodeName(i), found, mode == afterHeaders, header)
				}
			}
		})
	}
}

// TestStreamFailures: members that fail before headers, after headers, and
// after K messages each add exactly one error message after their own
// messages; the others' messages all arrive; the call is OK.
func TestStreamFailures(t *testing.T) {
	const lines = 4
	// failAfter[i]: -1 healthy, 0 before any message, K after K messages.
	failAfter := []int{-1, 0, 2, -1, lines}
	g := startGroup(t, len(failAfter), func(i int, m *machine) {
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			if i == 1 {
				return status.Error(codes.Unavailable, "disk gone") // trailers only
			}
			for k := 0; k < int(req.GetLines()); k++ {
				if failAfter[i] >= 0 && k == failAfter[i] {
					return status.Errorf(codes.Aborted, "%s broke after %d", m.name, k)
				}
				if err := s.Send(&clusterpb.LogLine{Seq: int64(k)}); err != nil {
					return err
				}
			}
			if failAfter[i] == lines {
				return status.Errorf(codes.Aborted, "%s broke after %d", m.name, lines)
			}
			return nil
		}
	}, fanout.Config{})
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{Lines: lines})
	if err != nil {
		t.Fatal(err)
	}
	msgs := map[string]int{}
	errs := map[string][]string{}
	for {
		line, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("stream failed: %v", err)
		}
		host := line.GetMetadata().GetHostname()
		if line.GetMetadata().GetError() != "" {
			if line.GetSeq() != 0 || line.GetText() != "" {
				t.Errorf("error message from %s has payload: %v", host, line)
			}
			errs[host] = append(errs[host], codes.Code(line.GetMetadata().GetStatus().GetCode()).String())
			continue
		}
		if len(errs[host]) > 0 {
			t.Errorf("%s sent a message after its error", host)
		}
		if int64(msgs[host]) != line.GetSeq() {
			t.Errorf("%s: seq %d, want %d", host, line.GetSeq(), msgs[host])
		}
		msgs[host]++
	}
	for i, fa := range failAfter {
		host := nodeName(i)
		wantMsgs, wantErrs := lines, 0
		switch {
		case i == 1:
			wantMsgs, wantErrs = 0, 1
		case fa >= 0:
			wantMsgs, wantErrs = fa, 1
		}
		if msgs[host] != wantMsgs || len(errs[host]) != wantErrs {
			t.Errorf("%s: %d messages and errors %v, want %d and %d error", host, msgs[host], errs[host], wantMsgs, wantErrs)
		}
	}
}

// rawMachine serves every method with raw frames, to misbehave in ways
// generated code cannot: two responses to a unary call, or none with OK.
func rawMachine(t *testing.T, responses int) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	resp, _ := proto.Marshal(&clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: "raw"}}})
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawcodec.Codec{}), grpc.UnknownServiceHandler(func(_ any, s grpc.ServerStream) error {
		var req rawcodec.Frame
		if err := s.RecvMsg(&req); err != nil {
			return err
		}
		req.Free()
		for i := 0; i < responses; i++ {
			if err := s.SendMsg(&rawcodec.Frame{Data: mem.BufferSlice{mem.SliceBuffer(resp)}}); err != nil {
				return err
			}
		}
		return nil
	}))
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestUnaryMisbehaving: a member that answers a unary call with two
// messages, or with none and OK, becomes an error item; nothing hangs.
func TestUnaryMisbehaving(t *testing.T) {
	for _, tc := range []struct {
		responses int
		want      string
	}{{2, "2 messages"}, {0, "no response message"}, {5, "2 messages"}} {
		healthyAddr := serveMachine(t, &machine{name: "n0"})
		g := startProxy(t, []string{healthyAddr, rawMachine(t, tc.responses)}, fanout.Config{})
		v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
		if err != nil {
			t.Fatal(err)
		}
		items := v.GetMessages()
		if len(items) != 2 || items[0].GetNode() != "n0" {
			t.Fatalf("%d responses: items %v", tc.responses, items)
		}
		md := items[1].GetMetadata()
		if md.GetHostname() != "n1" || codes.Code(md.GetStatus().GetCode()) != codes.Internal || !strings.Contains(md.GetError(), tc.want) {
			t.Errorf("%d responses: error item %v, want Internal %q", tc.responses, md, tc.want)
		}
	}
}

// TestHangingMemberPartialAnswer: one member never answers. With a client
// deadline, the healthy members' answers still arrive before it, with an
// error item for the hung one.
func TestHangingMemberPartialAnswer(t *testing.T) {
	g := startGroup(t, 3, func(i int, m *machine) {
		if i == 1 {
			m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			}
		}
	}, fanout.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatalf("call failed (the partial answer did not beat the deadline): %v", err)
	}
	items := v.GetMessages()
	if len(items) != 3 || items[0].GetNode() != "n0" || items[2].GetNode() != "n2" {
		t.Fatalf("items %v", items)
	}
	if c := codes.Code(items[1].GetMetadata().GetStatus().GetCode()); c != codes.DeadlineExceeded {
		t.Errorf("hung member's item has code %v, want DeadlineExceeded", c)
	}
}

// TestUnreachableMembers: one member's address accepts TCP and never
// speaks, another has nothing listening. Both become error items and the
// healthy member answers.
func TestUnreachableMembers(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		silent.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()

	g := startProxy(t, []string{serveMachine(t, &machine{name: "n0"}), silent.Addr().String(), refusedAddr}, fanout.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	items := v.GetMessages()
	if len(items) != 3 || items[0].GetNode() != "n0" {
		t.Fatalf("items %v", items)
	}
	for _, i := range []int{1, 2} {
		if c := codes.Code(items[i].GetMetadata().GetStatus().GetCode()); c != codes.Unavailable && c != codes.DeadlineExceeded {
			t.Errorf("item %d code %v, want Unavailable or DeadlineExceeded", i, c)
		}
	}
}

// TestFailFast: with fail_fast, a member's error is the call's status,
// naming the member.
func TestFailFast(t *testing.T) {
	g := startGroup(t, 3, func(i int, m *machine) {
		if i == 2 {
			m.version = func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
				return nil, status.Error(codes.PermissionDenied, "nope")
			}
			m.logs = func(*clusterpb.LogsRequest, grpc.ServerStreamingServer[clusterpb.LogLine]) error {
				return status.Error(codes.PermissionDenied, "nope")
			}
		}
	}, fanout.Config{FailFast: true})
	_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "n2: nope" {
		t.Errorf("unary: %v, want PermissionDenied \"n2: nope\"", err)
	}
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{Lines: 1})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = s.Recv()
	}
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "n2: nope" {
		t.Errorf("stream: %v, want PermissionDenied \"n2: nope\"", err)
	}
}
