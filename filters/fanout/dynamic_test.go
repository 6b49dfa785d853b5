package fanout_test

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	grpcmd "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/discovery"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// trackedConn is a member connection whose closing the test observes.
type trackedConn struct {
	*grpc.ClientConn
	closes atomic.Int32
}

func (c *trackedConn) Close() error {
	c.closes.Add(1)
	return c.ClientConn.Close()
}

// shutdown reports whether the connection was closed.
func (c *trackedConn) shutdown() bool { return c.GetState() == connectivity.Shutdown }

// connDialer dials real member connections and remembers them by address.
type connDialer struct {
	mu    sync.Mutex
	conns map[string][]*trackedConn
}

func (d *connDialer) dial(a resolver.Address) (discovery.Conn, error) {
	cc, err := grpc.NewClient("passthrough:///"+a.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	c := &trackedConn{ClientConn: cc}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.conns == nil {
		d.conns = map[string][]*trackedConn{}
	}
	d.conns[a.Addr] = append(d.conns[a.Addr], c)
	return c, nil
}

// conn returns the last connection dialed to addr.
func (d *connDialer) conn(t *testing.T, addr string) *trackedConn {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	cs := d.conns[addr]
	if len(cs) == 0 {
		t.Fatalf("%s was never dialed", addr)
	}
	return cs[len(cs)-1]
}

// dynGroup is a running fan-out proxy whose members come from a resolver.
type dynGroup struct {
	members  *discovery.Members
	terminal *fanout.Terminal
	dialer   *connDialer
	client   clusterpb.MachineClient
}

// startDynamic fans out to the members that target's resolver reports
// (r, when given, serves the target's scheme), knowing method kinds from
// config patterns unless cfg says otherwise.
func startDynamic(t *testing.T, target string, r resolver.Builder, cfg fanout.Config) *dynGroup {
	t.Helper()
	if cfg.Kinds == nil {
		cfg.Kinds = kinds
	}
	return startDynamicWith(t, target, r, cfg)
}

func startDynamicWith(t *testing.T, target string, r resolver.Builder, cfg fanout.Config) *dynGroup {
	t.Helper()
	d := &connDialer{}
	opts := []discovery.Option{discovery.WithRefresh(0)}
	if r != nil {
		opts = append(opts, discovery.WithResolvers(r))
	}
	m, err := discovery.Watch(target, d.dial, opts...)
	if err != nil {
		t.Fatal(err)
	}
	term, err := fanout.NewDynamic(fanout.Discovered(m), cfg)
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	chain, err := pipeline.Build(nil, term)
	if err != nil {
		_ = m.Close()
		t.Fatal(err)
	}
	addr := proxytest.Serve(t, chain, server.WithCloser(m))
	conn := proxytest.Dial(t, addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return &dynGroup{members: m, terminal: term, dialer: d, client: clusterpb.NewMachineClient(conn)}
}

// namedState is a resolver state of name=address pairs.
func namedState(pairs ...string) resolver.State {
	var st resolver.State
	for i := 0; i < len(pairs); i += 2 {
		st.Addresses = append(st.Addresses, discovery.WithName(resolver.Address{Addr: pairs[i+1]}, pairs[i]))
	}
	return st
}

// hostnames returns the member names of a Version answer's items.
func hostnames(v *clusterpb.VersionResponse) []string {
	var out []string
	for _, item := range v.GetMessages() {
		out = append(out, item.GetMetadata().GetHostname())
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingLogs sends one line, then waits for unblock (or the call's end)
// before the second.
func blockingLogs(name string, unblock <-chan struct{}) func(*clusterpb.LogsRequest, grpc.ServerStreamingServer[clusterpb.LogLine]) error {
	return func(_ *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
		if err := s.Send(&clusterpb.LogLine{Text: name + " line 0"}); err != nil {
			return err
		}
		select {
		case <-unblock:
		case <-s.Context().Done():
			return s.Context().Err()
		}
		return s.Send(&clusterpb.LogLine{Text: name + " line 1", Seq: 1})
	}
}

// TestDynamicMembership changes the members while a call runs: the call in
// flight keeps its members and finishes OK, new calls see the new set, and
// the removed member's connection closes after, and only after, that
// call's end.
func TestDynamicMembership(t *testing.T) {
	unblock := make(chan struct{})
	aAddr := serveMachine(t, &machine{name: "a", logs: blockingLogs("a", unblock)})
	bAddr := serveMachine(t, &machine{name: "b"})
	cAddr := serveMachine(t, &machine{name: "c"})
	r := manual.NewBuilderWithScheme("test")
	r.InitialState(namedState("a", aAddr, "b", bAddr))
	g := startDynamic(t, "test:///g", r, fanout.Config{Name: "g"})
	ctx := callCtx(t)

	logs, err := g.client.Logs(ctx, &clusterpb.LogsRequest{Lines: 2})
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for !slices.Contains(lines, "a line 0") {
		l, err := logs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l.GetText())
	}
	a := g.dialer.conn(t, aAddr)

	r.UpdateState(namedState("b", bAddr, "c", cAddr))
	v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := hostnames(v); !slices.Equal(got, []string{"b", "c"}) {
		t.Fatalf("a new call went to %v, want [b c]", got)
	}
	if got := g.terminal.Members(); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("Members() = %v", got)
	}
	if a.closes.Load() != 0 || a.shutdown() {
		t.Fatal("the removed member's connection closed while a call used it")
	}

	close(unblock)
	for {
		l, err := logs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("the call in flight failed: %v", err)
		}
		if l.GetMetadata().GetError() != "" {
			t.Fatalf("the call in flight got an error item: %v", l)
		}
		lines = append(lines, l.GetText())
	}
	slices.Sort(lines)
	if want := []string{"a line 0", "a line 1", "b line 0", "b line 1"}; !slices.Equal(lines, want) {
		t.Fatalf("the call in flight got %q", lines)
	}
	waitUntil(t, "a's connection to close", a.shutdown)
	if n := a.closes.Load(); n != 1 {
		t.Errorf("a's connection closed %d times", n)
	}
	if b := g.dialer.conn(t, bAddr); b.closes.Load() != 0 || b.shutdown() {
		t.Error("b's connection closed though b stayed")
	}
}

// TestDynamicCancelReleases cancels a call whose member left meanwhile: the
// member's connection closes, once, and the remaining members keep theirs.
func TestDynamicCancelReleases(t *testing.T) {
	never := make(chan struct{})
	aAddr := serveMachine(t, &machine{name: "a", logs: blockingLogs("a", never)})
	bAddr := serveMachine(t, &machine{name: "b"})
	r := manual.NewBuilderWithScheme("test")
	r.InitialState(namedState("a", aAddr, "b", bAddr))
	g := startDynamic(t, "test:///g", r, fanout.Config{Name: "g"})

	ctx, cancel := context.WithCancel(callCtx(t))
	logs, err := g.client.Logs(ctx, &clusterpb.LogsRequest{Lines: 1})
	if err != nil {
		t.Fatal(err)
	}
	for {
		l, err := logs.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if l.GetText() == "a line 0" {
			break
		}
	}
	r.UpdateState(namedState("b", bAddr))
	a := g.dialer.conn(t, aAddr)
	if a.shutdown() {
		t.Fatal("a closed while a call used it")
	}
	cancel()
	waitUntil(t, "a's connection to close", a.shutdown)

	v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := hostnames(v); !slices.Equal(got, []string{"b"}) {
		t.Errorf("after the cancel: %v", got)
	}
	if n, b := a.closes.Load(), g.dialer.conn(t, bAddr); n != 1 || b.closes.Load() != 0 {
		t.Errorf("a closed %d times, b %d times; want 1 and 0", n, b.closes.Load())
	}
}

// TestDynamicNodes checks that the nodes header selects among the names the
// resolver gave: the name attribute when set, the address otherwise.
func TestDynamicNodes(t *testing.T) {
	addrs := []string{serveMachine(t, &machine{name: "m0"}), serveMachine(t, &machine{name: "m1"})}
	r1 := manual.NewBuilderWithScheme("named")
	r1.InitialState(namedState("alpha", addrs[0], "beta", addrs[1]))
	named := startDynamic(t, "named:///g", r1, fanout.Config{Name: "g"})
	r2 := manual.NewBuilderWithScheme("plain")
	r2.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: addrs[1]}, {Addr: addrs[0]}}})
	plain := startDynamic(t, "plain:///g", r2, fanout.Config{Name: "g"})
	sorted := slices.Sorted(slices.Values(addrs))

	cases := []struct {
		name  string
		g     *dynGroup
		nodes string
		want  []string
		code  codes.Code
	}{
		{"all named", named, "", []string{"alpha", "beta"}, codes.OK},
		{"one by name", named, "beta", []string{"beta"}, codes.OK},
		{"in the order asked", named, "beta,alpha", []string{"beta", "alpha"}, codes.OK},
		{"an address is not a name", named, addrs[0], nil, codes.InvalidArgument},
		{"all by address", plain, "", sorted, codes.OK},
		{"one by address", plain, addrs[1], []string{addrs[1]}, codes.OK},
		{"a name unknown", plain, "alpha", nil, codes.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := callCtx(t)
			if tc.nodes != "" {
				ctx = grpcmd.AppendToOutgoingContext(ctx, "nodes", tc.nodes)
			}
			v, err := tc.g.client.Version(ctx, &clusterpb.VersionRequest{})
			if status.Code(err) != tc.code {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.code)
			}
			if got := hostnames(v); !slices.Equal(got, tc.want) {
				t.Errorf("items from %v, want %v", got, tc.want)
			}
		})
	}
}

// TestDynamicNoMembers checks the UNAVAILABLE answer of a group without
// members, and that the group recovers when members come.
func TestDynamicNoMembers(t *testing.T) {
	addr := serveMachine(t, &machine{name: "a"})
	cases := []struct {
		name   string
		feed   func(r *manual.Resolver)
		wantMs string
	}{
		{"no addresses", func(r *manual.Resolver) { r.UpdateState(resolver.State{}) },
			"fanout g: no members (resolver test:///g returned no addresses)"},
		{"resolver error first", func(r *manual.Resolver) { r.CC().ReportError(errors.New("lookup nodes.test: no such host")) },
			"fanout g: no members (resolver test:///g: lookup nodes.test: no such host)"},
		{"error after the members left", func(r *manual.Resolver) {
			r.UpdateState(resolver.State{})
			r.CC().ReportError(errors.New("server misbehaving"))
		}, "fanout g: no members (resolver test:///g: server misbehaving)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := manual.NewBuilderWithScheme("test")
			g := startDynamic(t, "test:///g", r, fanout.Config{Name: "g"})
			tc.feed(r)
			_, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
			if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != tc.wantMs {
				t.Fatalf("got %v %q, want UNAVAILABLE %q", st.Code(), st.Message(), tc.wantMs)
			}
			if got := g.terminal.Members(); len(got) != 0 {
				t.Errorf("Members() = %v", got)
			}
			r.UpdateState(namedState("a", addr))
			v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
			if err != nil || !slices.Equal(hostnames(v), []string{"a"}) {
				t.Fatalf("after a member came: %v, %v", hostnames(v), err)
			}
		})
	}
}

// TestDiscoveredWaits checks that a call made before the resolver's first
// answer waits for it, bounded by the call's context.
func TestDiscoveredWaits(t *testing.T) {
	r := manual.NewBuilderWithScheme("test")
	m, err := discovery.Watch("test:///g", (&connDialer{}).dial, discovery.WithResolvers(r), discovery.WithRefresh(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	src := fanout.Discovered(m)

	done, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := src.Acquire(done); err == nil || err.Error() != "no members (resolver test:///g: no answer yet: context canceled)" {
		t.Fatalf("Acquire before any answer, ctx done: %v", err)
	}

	type result struct {
		set     fanout.MemberSet
		release func()
		err     error
	}
	got := make(chan result, 1)
	go func() {
		set, release, err := src.Acquire(callCtx(t))
		got <- result{set, release, err}
	}()
	r.UpdateState(namedState("a", "127.0.0.1:1"))
	res := <-got
	if res.err != nil {
		t.Fatal(res.err)
	}
	defer res.release()
	if len(res.set.Members) != 1 || res.set.Members[0].Name != "a" {
		t.Fatalf("members %v", res.set.Members)
	}
}

// TestDynamicReflection learns method kinds from the reflection of a
// current member, and releases the member it asked.
func TestDynamicReflection(t *testing.T) {
	aAddr := serveMachineWith(t, &machine{name: "a"}, registerReflection)
	bAddr := serveMachineWith(t, &machine{name: "b"}, registerReflection)
	r := manual.NewBuilderWithScheme("test")
	r.InitialState(namedState("a", aAddr))
	g := startDynamicWith(t, "test:///g", r, fanout.Config{Name: "g"})
	ctx := callCtx(t)

	v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if got := hostnames(v); !slices.Equal(got, []string{"a"}) || v.GetMessages()[0].GetNode() != "a" {
		t.Fatalf("Version: %v", v)
	}
	r.UpdateState(namedState("b", bAddr))
	logs, err := g.client.Logs(ctx, &clusterpb.LogsRequest{Lines: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		l, err := logs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if l.GetMetadata().GetHostname() != "b" {
			t.Fatalf("line from %q", l.GetMetadata().GetHostname())
		}
		n++
	}
	if n != 2 {
		t.Fatalf("%d lines, want 2", n)
	}
	// The reflection streams on a ended, so nothing holds a any more.
	waitUntil(t, "a's connection to close", g.dialer.conn(t, aAddr).shutdown)
}

func registerReflection(s *grpc.Server) { reflection.Register(s) }

// serveMachineWith starts m on loopback with extra services registered.
func serveMachineWith(t testing.TB, m clusterpb.MachineServer, register ...func(*grpc.Server)) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return serveOn(t, lis, m, register...)
}

// serveOn serves m on lis until the test ends.
func serveOn(t testing.TB, lis net.Listener, m clusterpb.MachineServer, register ...func(*grpc.Server)) string {
	srv := grpc.NewServer()
	clusterpb.RegisterMachineServer(srv, m)
	for _, reg := range register {
		reg(srv)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestNewDynamicErrors(t *testing.T) {
	if _, err := fanout.NewDynamic(nil, fanout.Config{}); err == nil || err.Error() != "fanout: a member source is required" {
		t.Errorf("nil source: %v", err)
	}
	r := manual.NewBuilderWithScheme("test")
	m, err := discovery.Watch("test:///g", (&connDialer{}).dial, discovery.WithResolvers(r), discovery.WithRefresh(0))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if _, err := fanout.NewDynamic(fanout.Discovered(m), fanout.Config{QueueSize: -1}); err == nil || err.Error() != "fanout: queue_size: must not be negative" {
		t.Errorf("bad config: %v", err)
	}
}
