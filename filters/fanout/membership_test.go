package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
)

// closedAddr returns a loopback address where nothing listens any more, as
// a member that stopped.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	return addr
}

// dialMember returns a connection to addr, closed when the test ends.
func dialMember(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// seqSource hands out its sets in turn, the last one from then on, and
// counts acquisitions not yet released.
type seqSource struct {
	mu   sync.Mutex
	sets []fanout.MemberSet
	held atomic.Int32
}

func (s *seqSource) Acquire(context.Context) (fanout.MemberSet, func(), error) {
	s.mu.Lock()
	set := s.sets[0]
	if len(s.sets) > 1 {
		s.sets = s.sets[1:]
	}
	s.mu.Unlock()
	s.held.Add(1)
	return set, sync.OnceFunc(func() { s.held.Add(-1) }), nil
}

// startSource serves a dynamic group over src and returns its client.
func startSource(t *testing.T, src fanout.MemberSource, cfg fanout.Config) clusterpb.MachineClient {
	t.Helper()
	term, err := fanout.NewDynamic(src, cfg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pipeline.Build(nil, term)
	if err != nil {
		t.Fatal(err)
	}
	addr := proxytest.Serve(t, chain)
	return clusterpb.NewMachineClient(proxytest.Dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials())))
}

// TestShortfallCodes: a quorum or max_targets that the members cannot meet
// is INVALID_ARGUMENT when the client's nodes header or the group's config
// caused it, and UNAVAILABLE (worth retrying) when a dynamic group's
// resolver currently returns too few or too many members.
func TestShortfallCodes(t *testing.T) {
	aAddr := serveMachine(t, &machine{name: "a"})
	bAddr := serveMachine(t, &machine{name: "b"})
	quorum3 := fanout.Config{Name: "g", Policy: fanout.Policy{Mode: fanout.Quorum, Quorum: 3}}
	max1 := fanout.Config{Name: "g", MaxTargets: 1}
	dynamic := func(cfg fanout.Config) clusterpb.MachineClient {
		r := manual.NewBuilderWithScheme("test")
		r.InitialState(namedState("n0", aAddr, "n1", bAddr))
		return startDynamic(t, "test:///g", r, cfg).client
	}
	static := func(cfg fanout.Config) clusterpb.MachineClient {
		return startProxy(t, []string{aAddr, bAddr}, cfg).client
	}
	cases := []struct {
		name  string
		start func(fanout.Config) clusterpb.MachineClient
		cfg   fanout.Config
		nodes string
		code  codes.Code
		msg   string
	}{
		{"dynamic quorum, all members", dynamic, quorum3, "", codes.Unavailable,
			"fanout g: quorum of 3 needs 3 members, the resolver has 2"},
		{"dynamic quorum, named", dynamic, quorum3, "n0,n1", codes.InvalidArgument,
			"fanout: quorum of 3 can never be reached with 2 targets"},
		{"static quorum, all members", static, quorum3, "", codes.InvalidArgument,
			"fanout: quorum of 3 can never be reached with 2 targets"},
		{"dynamic max_targets, all members", dynamic, max1, "", codes.Unavailable,
			`fanout g: the resolver has 2 members, more than max_targets (1) per call; name the targets in "nodes"`},
		{"dynamic max_targets, named", dynamic, max1, "n0,n1", codes.InvalidArgument,
			`fanout: more than 1 targets in "nodes"`},
		{"static max_targets, all members", static, max1, "", codes.InvalidArgument,
			`fanout: the group has 2 members, more than the limit of 1 targets per call; name the targets in "nodes"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client := tc.start(tc.cfg)
			ctx := callCtx(t)
			if tc.nodes != "" {
				ctx = grpcmd.AppendToOutgoingContext(ctx, "nodes", tc.nodes)
			}
			_, err := client.Version(ctx, &clusterpb.VersionRequest{})
			if st := status.Convert(err); st.Code() != tc.code || st.Message() != tc.msg {
				t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
		})
	}
}

// TestUnversionedSets: a source that leaves Version at 0 has each call's
// members derived anew; one that gives a version has its first set's
// lookups reused while the version stays, as MemberSet documents.
func TestUnversionedSets(t *testing.T) {
	aAddr := serveMachine(t, &machine{name: "a"})
	bAddr := serveMachine(t, &machine{name: "b"})
	a := fanout.Member{Name: "a", Conn: dialMember(t, aAddr)}
	b := fanout.Member{Name: "b", Conn: dialMember(t, bAddr)}
	cases := []struct {
		name    string
		version uint64
		want    [][]string
	}{
		{"version 0", 0, [][]string{{"a"}, {"b"}, {"a", "b"}}},
		{"version 7", 7, [][]string{{"a"}, {"a"}, {"a"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := &seqSource{sets: []fanout.MemberSet{
				{Version: tc.version, Members: []fanout.Member{a}},
				{Version: tc.version, Members: []fanout.Member{b}},
				{Version: tc.version, Members: []fanout.Member{a, b}},
			}}
			client := startSource(t, src, fanout.Config{Name: "g", Kinds: kinds})
			for i, want := range tc.want {
				v, err := client.Version(callCtx(t), &clusterpb.VersionRequest{})
				if err != nil {
					t.Fatalf("call %d: %v", i, err)
				}
				if got := hostnames(v); !slices.Equal(got, want) {
					t.Fatalf("call %d went to %v, want %v", i, got, want)
				}
				for _, item := range v.GetMessages() {
					if item.GetNode() != item.GetMetadata().GetHostname() {
						t.Fatalf("call %d: %q answered as %q", i, item.GetNode(), item.GetMetadata().GetHostname())
					}
				}
			}
			if n := src.held.Load(); n != 0 {
				t.Errorf("%d acquisitions not released", n)
			}
		})
	}
}

// TestReflectionSkipsDownMember: with no kinds configured, a dynamic
// group's first call learns them from reflection, which skips a member
// whose connection fails and asks the next; the call then fans out to both,
// the stopped member contributing an error item.
func TestReflectionSkipsDownMember(t *testing.T) {
	down := closedAddr(t)
	up := serveMachineWith(t, &machine{name: "b"}, registerReflection)
	r := manual.NewBuilderWithScheme("test")
	// Members are ordered by name: "a", the stopped one, is asked first.
	r.InitialState(namedState("a", down, "b", up))
	g := startDynamicWith(t, "test:///g", r, fanout.Config{Name: "g"})

	v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	items := v.GetMessages()
	if got := hostnames(v); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("items from %v", got)
	}
	if items[0].GetMetadata().GetStatus().GetCode() != int32(codes.Unavailable) || items[1].GetMetadata().GetError() != "" || items[1].GetNode() != "b" {
		t.Fatalf("items %v", items)
	}
}

// TestAnyMemberFailover: AnyMember opens a call on the next member when the
// one in turn cannot be reached, but not when the member answered with an
// error, since the request may have done its work there; every acquisition
// is released.
func TestAnyMemberFailover(t *testing.T) {
	var calledB atomic.Int32
	down := closedAddr(t)
	draining := status.Error(codes.Unavailable, "draining")
	unavailable := serveMachine(t, &machine{name: "u",
		version: func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			return nil, draining
		},
		logs: func(*clusterpb.LogsRequest, grpc.ServerStreamingServer[clusterpb.LogLine]) error { return draining },
	})
	b := serveMachine(t, &machine{name: "b",
		version: func(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			calledB.Add(1)
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: "b"}}}, nil
		},
		logs: func(_ *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			calledB.Add(1)
			return s.Send(&clusterpb.LogLine{Text: "b line 0"})
		},
	})
	// calls make one call each through a client and return the answer.
	calls := map[string]func(ctx context.Context, c clusterpb.MachineClient) (string, error){
		"Invoke": func(ctx context.Context, c clusterpb.MachineClient) (string, error) {
			v, err := c.Version(ctx, &clusterpb.VersionRequest{})
			if err != nil {
				return "", err
			}
			return v.GetMessages()[0].GetNode(), nil
		},
		"NewStream": func(ctx context.Context, c clusterpb.MachineClient) (string, error) {
			s, err := c.Logs(ctx, &clusterpb.LogsRequest{Lines: 1})
			if err != nil {
				return "", err
			}
			l, err := s.Recv()
			if err != nil {
				return "", err
			}
			if _, err := s.Recv(); err != io.EOF {
				return "", fmt.Errorf("end of the stream: %v", err)
			}
			return l.GetText(), nil
		},
	}
	cases := []struct {
		name  string
		addrs []string
		code  codes.Code
		msg   string
		want  map[string]string // the answer by call
	}{
		{"first down", []string{down, b}, codes.OK, "", map[string]string{"Invoke": "b", "NewStream": "b line 0"}},
		{"first answers UNAVAILABLE", []string{unavailable, b}, codes.Unavailable, "draining", nil},
		{"all down", []string{down, closedAddr(t)}, codes.Unavailable, "", nil},
	}
	for _, tc := range cases {
		for how, call := range calls {
			t.Run(tc.name+"/"+how, func(t *testing.T) {
				calledB.Store(0)
				var members []fanout.Member
				for i, addr := range tc.addrs {
					members = append(members, fanout.Member{Name: nodeName(i), Conn: dialMember(t, addr)})
				}
				src := &seqSource{sets: []fanout.MemberSet{{Version: 1, Members: members}}}
				got, err := call(callCtx(t), clusterpb.NewMachineClient(fanout.AnyMember(src)))
				if st := status.Convert(err); st.Code() != tc.code || (tc.msg != "" && st.Message() != tc.msg) {
					t.Fatalf("%v, want %v %q", err, tc.code, tc.msg)
				}
				if got != tc.want[how] {
					t.Errorf("answer %q, want %q", got, tc.want[how])
				}
				if n := calledB.Load(); tc.code != codes.OK && n != 0 {
					t.Errorf("b was called %d times after the first member answered", n)
				}
				if n := src.held.Load(); n != 0 {
					t.Errorf("%d acquisitions not released", n)
				}
			})
		}
	}
}
