package discovery_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/manifold-grpc/manifold/discovery"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeConn is a member connection that counts its closes and notices use
// after close.
type fakeConn struct {
	addr           string
	closes         atomic.Int32
	usedAfterClose atomic.Bool
}

func (c *fakeConn) use() {
	if c.closes.Load() > 0 {
		c.usedAfterClose.Store(true)
	}
}

func (c *fakeConn) Invoke(context.Context, string, any, any, ...grpc.CallOption) error {
	c.use()
	return nil
}

func (c *fakeConn) NewStream(context.Context, *grpc.StreamDesc, string, ...grpc.CallOption) (grpc.ClientStream, error) {
	c.use()
	return nil, errors.New("fake connection")
}

func (c *fakeConn) Close() error {
	c.closes.Add(1)
	return nil
}

// dialer makes fake connections and remembers them in dial order.
type dialer struct {
	mu    sync.Mutex
	conns []*fakeConn
	fail  map[string]bool // addresses that fail to dial
}

func (d *dialer) dial(a resolver.Address) (discovery.Conn, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail[a.Addr] {
		return nil, errors.New("refused")
	}
	c := &fakeConn{addr: a.Addr}
	d.conns = append(d.conns, c)
	return c, nil
}

func (d *dialer) dialed() []*fakeConn {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.conns)
}

// watchManual follows a manual resolver of scheme "test".
func watchManual(t *testing.T, opts ...discovery.Option) (*discovery.Members, *manual.Resolver, *dialer) {
	t.Helper()
	r := manual.NewBuilderWithScheme("test")
	d := &dialer{}
	m, err := discovery.Watch("test:///group", d.dial, append([]discovery.Option{discovery.WithResolvers(r)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m, r, d
}

func addrs(as ...string) resolver.State {
	var st resolver.State
	for _, a := range as {
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a})
	}
	return st
}

func names(s *discovery.Snapshot) []string {
	var out []string
	for _, m := range s.Members() {
		out = append(out, m.Name)
	}
	return out
}

// current returns the names of m's members now.
func current(m *discovery.Members) []string {
	s, release := m.Acquire()
	defer release()
	return names(s)
}

// connOf returns the connection of the member named name in s.
func connOf(t *testing.T, s *discovery.Snapshot, name string) *fakeConn {
	t.Helper()
	for _, m := range s.Members() {
		if m.Name == name {
			return m.Conn.(*fakeConn)
		}
	}
	t.Fatalf("no member %s in %v", name, names(s))
	return nil
}

// TestDiff feeds a sequence of updates and checks, after each, the members,
// which addresses were dialed, which connections are closed, and whether
// the version moved.
func TestDiff(t *testing.T) {
	m, r, d := watchManual(t)
	steps := []struct {
		name        string
		state       resolver.State
		want        []string
		dialed      []string // every dial so far
		closed      []string // addresses of closed connections so far
		sameVersion bool
	}{
		{"first", addrs("10.0.0.2:1", "10.0.0.1:1"), []string{"10.0.0.1:1", "10.0.0.2:1"}, []string{"10.0.0.1:1", "10.0.0.2:1"}, nil, false},
		{"one added, one removed", addrs("10.0.0.2:1", "10.0.0.3:1"), []string{"10.0.0.2:1", "10.0.0.3:1"}, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}, []string{"10.0.0.1:1"}, false},
		{"same set, other order", addrs("10.0.0.3:1", "10.0.0.2:1", "10.0.0.3:1"), []string{"10.0.0.2:1", "10.0.0.3:1"}, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1"}, []string{"10.0.0.1:1"}, true},
		{"a name moves to another address", resolver.State{Addresses: []resolver.Address{
			discovery.WithName(resolver.Address{Addr: "10.0.0.9:1"}, "10.0.0.2:1"),
			{Addr: "10.0.0.3:1"},
		}}, []string{"10.0.0.2:1", "10.0.0.3:1"}, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.9:1"}, []string{"10.0.0.1:1", "10.0.0.2:1"}, false},
		{"empty", addrs(), nil, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.9:1"}, []string{"10.0.0.1:1", "10.0.0.2:1", "10.0.0.3:1", "10.0.0.9:1"}, false},
	}
	var version uint64
	for _, st := range steps {
		r.UpdateState(st.state)
		s, release := m.Acquire()
		if got := names(s); !slices.Equal(got, st.want) {
			t.Errorf("%s: members %v, want %v", st.name, got, st.want)
		}
		var dialed, closed []string
		for _, c := range d.dialed() {
			dialed = append(dialed, c.addr)
			if n := c.closes.Load(); n > 0 {
				closed = append(closed, c.addr)
				if n != 1 {
					t.Errorf("%s: %s closed %d times", st.name, c.addr, n)
				}
			}
		}
		slices.Sort(dialed)
		slices.Sort(closed)
		if !slices.Equal(dialed, st.dialed) || !slices.Equal(closed, st.closed) {
			t.Errorf("%s: dialed %v, closed %v; want %v and %v", st.name, dialed, closed, st.dialed, st.closed)
		}
		if (s.Version() == version) != st.sameVersion {
			t.Errorf("%s: version %d after %d, want same: %v", st.name, s.Version(), version, st.sameVersion)
		}
		version = s.Version()
		release()
	}
}

// TestRemovedMemberClosesAfterLastRelease holds a snapshot across an update
// that removes a member: the member's connection stays open, usable, until
// that snapshot is released, and a double release harms no one.
func TestRemovedMemberClosesAfterLastRelease(t *testing.T) {
	m, r, _ := watchManual(t)
	r.UpdateState(addrs("a:1", "b:1"))
	old, releaseOld := m.Acquire()
	a, b := connOf(t, old, "a:1"), connOf(t, old, "b:1")

	r.UpdateState(addrs("b:1", "c:1"))
	s, release := m.Acquire()
	if got := names(s); !slices.Equal(got, []string{"b:1", "c:1"}) {
		t.Fatalf("new members %v", got)
	}
	if got := names(old); !slices.Equal(got, []string{"a:1", "b:1"}) {
		t.Fatalf("the held snapshot changed: %v", got)
	}
	if a.closes.Load() != 0 {
		t.Fatal("a was closed while a call held it")
	}
	releaseOld()
	releaseOld() // no-op
	if a.closes.Load() != 1 {
		t.Fatalf("a closed %d times after its last release, want 1", a.closes.Load())
	}
	if b.closes.Load() != 0 || connOf(t, s, "b:1") != b {
		t.Fatal("b, still a member, lost its connection")
	}
	release()
	release()
	if b.closes.Load() != 0 {
		t.Fatal("double releases closed a current member")
	}
}

// TestNames checks where member names come from and which addresses are
// ignored.
func TestNames(t *testing.T) {
	named := func(addr, name string) resolver.Address {
		return discovery.WithName(resolver.Address{Addr: addr}, name)
	}
	cases := []struct {
		name    string
		state   resolver.State
		want    []string
		wantErr string
	}{
		{"addresses are names", addrs("10.0.0.5:50000", "10.0.0.4:50000"), []string{"10.0.0.4:50000", "10.0.0.5:50000"}, ""},
		{"name attribute wins", resolver.State{Addresses: []resolver.Address{named("10.0.0.5:1", "zeta"), named("10.0.0.6:1", "alpha")}}, []string{"alpha", "zeta"}, ""},
		{"server name is not a name", resolver.State{Addresses: []resolver.Address{{Addr: "10.0.0.5:1", ServerName: "shared.example"}, {Addr: "10.0.0.6:1", ServerName: "shared.example"}}}, []string{"10.0.0.5:1", "10.0.0.6:1"}, ""},
		{"endpoints win over addresses", resolver.State{
			Addresses: []resolver.Address{{Addr: "10.0.0.1:1"}},
			Endpoints: []resolver.Endpoint{{Addresses: []resolver.Address{{Addr: "10.0.0.2:1"}, {Addr: "[::2]:1"}}}, {}},
		}, []string{"10.0.0.2:1"}, ""},
		{"endpoint attribute names it", resolver.State{Endpoints: []resolver.Endpoint{{
			Addresses:  []resolver.Address{{Addr: "10.0.0.2:1"}},
			Attributes: named("", "ep").Attributes,
		}}}, []string{"ep"}, ""},
		{"first of a name wins", resolver.State{Addresses: []resolver.Address{named("10.0.0.1:1", "n"), named("10.0.0.2:1", "n")}}, []string{"n"}, ""},
		{"bad names are ignored", resolver.State{Addresses: []resolver.Address{named("10.0.0.1:1", "a,b"), named("10.0.0.2:1", "c d"), named("10.0.0.3:1", "ok"), {}}}, []string{"ok"}, `member name "a,b" contains a comma`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, r, d := watchManual(t)
			r.UpdateState(tc.state)
			s, release := m.Acquire()
			defer release()
			if got := names(s); !slices.Equal(got, tc.want) {
				t.Errorf("members %v, want %v", got, tc.want)
			}
			if len(d.dialed()) != len(tc.want) {
				t.Errorf("%d dials for %d members", len(d.dialed()), len(tc.want))
			}
			if err := s.Err(); (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("Err() = %v, want %q", err, tc.wantErr)
			}
		})
	}
}

// TestErrors checks that resolver errors are kept next to the members, that
// a clean update clears them, and that a failed dial leaves the member out
// and says why.
func TestErrors(t *testing.T) {
	m, r, d := watchManual(t)
	select {
	case <-m.Ready():
		t.Fatal("ready before the resolver spoke")
	default:
	}
	s, release := m.Acquire()
	if s.Resolved() || len(s.Members()) != 0 {
		t.Fatalf("before any update: resolved %v, %d members", s.Resolved(), len(s.Members()))
	}
	release()

	r.CC().ReportError(errors.New("lookup failed"))
	<-m.Ready()
	s, release = m.Acquire()
	if !s.Resolved() || s.Err() == nil || s.Err().Error() != "lookup failed" {
		t.Fatalf("after an error: resolved %v, err %v", s.Resolved(), s.Err())
	}
	release()

	r.UpdateState(addrs("a:1"))
	r.CC().ReportError(errors.New("lookup failed again"))
	s, release = m.Acquire()
	if got := names(s); !slices.Equal(got, []string{"a:1"}) || s.Err() == nil {
		t.Fatalf("an error dropped the members: %v, err %v", got, s.Err())
	}
	a := connOf(t, s, "a:1")
	release()
	if a.closes.Load() != 0 {
		t.Fatal("an error closed a member's connection")
	}

	d.mu.Lock()
	d.fail = map[string]bool{"b:1": true}
	d.mu.Unlock()
	if err := r.CC().UpdateState(addrs("a:1", "b:1")); err != nil {
		t.Fatalf("UpdateState with one good member: %v", err)
	}
	s, release = m.Acquire()
	defer release()
	if got := names(s); !slices.Equal(got, []string{"a:1"}) || s.Err() == nil || !strings.Contains(s.Err().Error(), "member b:1: dial b:1: refused") {
		t.Fatalf("after a failed dial: %v, err %v", got, s.Err())
	}
	if err := r.CC().UpdateState(addrs()); err == nil {
		t.Error("an update with no address did not ask the resolver to try again")
	}
}

// TestClose checks that Close stops updates, empties the set and closes
// each connection once no snapshot holds it.
func TestClose(t *testing.T) {
	closedResolver := make(chan struct{})
	r := manual.NewBuilderWithScheme("test")
	r.CloseCallback = func() { close(closedResolver) }
	r.InitialState(addrs("a:1", "b:1"))
	d := &dialer{}
	m, err := discovery.Watch("test:///x", d.dial, discovery.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	held, release := m.Acquire()
	a, b := connOf(t, held, "a:1"), connOf(t, held, "b:1")
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	<-closedResolver
	if a.closes.Load() != 0 || b.closes.Load() != 0 {
		t.Fatal("Close closed connections a call holds")
	}
	s, r2 := m.Acquire()
	if len(s.Members()) != 0 || s.Err() == nil {
		t.Errorf("after Close: %v, err %v", names(s), s.Err())
	}
	r2()
	if err := r.CC().UpdateState(addrs("c:1")); err == nil || len(d.dialed()) != 2 {
		t.Errorf("an update after Close was applied (err %v, %d dials)", err, len(d.dialed()))
	}
	release()
	if a.closes.Load() != 1 || b.closes.Load() != 1 {
		t.Errorf("after the last release: a closed %d times, b %d, want 1", a.closes.Load(), b.closes.Load())
	}
	_ = m.Close()
}

// TestConcurrentUse acquires, uses and releases snapshots from many
// goroutines while the set changes: no connection is used after it was
// closed, and at the end every connection is closed exactly once.
func TestConcurrentUse(t *testing.T) {
	r := manual.NewBuilderWithScheme("test")
	d := &dialer{}
	m, err := discovery.Watch("test:///x", d.dial, discovery.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	r.UpdateState(addrs("a:1"))
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				s, release := m.Acquire()
				for _, mb := range s.Members() {
					_ = mb.Conn.Invoke(context.Background(), "/x/y", nil, nil)
				}
				release()
			}
		}()
	}
	for i := range 300 {
		r.UpdateState(addrs(fmt.Sprintf("a:%d", i%7+1), fmt.Sprintf("b:%d", i%3+1), "c:1"))
	}
	close(stop)
	wg.Wait()
	_ = m.Close()
	for _, c := range d.dialed() {
		if c.usedAfterClose.Load() {
			t.Errorf("%s was used after it was closed", c.addr)
		}
		if n := c.closes.Load(); n != 1 {
			t.Errorf("%s closed %d times, want 1", c.addr, n)
		}
	}
}

// TestRefresh checks that the resolver is asked to resolve again at the
// refresh interval.
func TestRefresh(t *testing.T) {
	asked := make(chan struct{}, 1)
	r := manual.NewBuilderWithScheme("test")
	r.ResolveNowCallback = func(resolver.ResolveNowOptions) {
		select {
		case asked <- struct{}{}:
		default:
		}
	}
	m, err := discovery.Watch("test:///x", (&dialer{}).dial, discovery.WithResolvers(r), discovery.WithRefresh(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for range 2 {
		select {
		case <-asked:
		case <-time.After(20 * time.Second):
			t.Fatal("the resolver was never asked to resolve again")
		}
	}
}

func TestWatchErrors(t *testing.T) {
	d := &dialer{}
	cases := []struct {
		target string
		dial   discovery.DialFunc
		want   string
	}{
		{"dns:///x:1", nil, "a dial function is required"},
		{"nodes.example:50000", d.dial, `no resolver for scheme "nodes.example"`},
		{"/just/a/path", d.dial, `no resolver for scheme ""`},
		{"nosuchscheme:///x", d.dial, `no resolver for scheme "nosuchscheme"`},
		{"file:///nonexistent/members", d.dial, "no such file"},
		{"dns:///bad:port:x", d.dial, "dns:///bad:port:x"},
	}
	for _, tc := range cases {
		m, err := discovery.Watch(tc.target, tc.dial)
		if err == nil {
			_ = m.Close()
			t.Errorf("Watch(%q): no error", tc.target)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Watch(%q) = %v, want it to mention %q", tc.target, err, tc.want)
		}
	}
}

func ExampleWatch() {
	// A resolver that the test drives; in production this is
	// "dns:///nodes.example.svc:50000" or "file:///etc/manifold/nodes".
	r := manual.NewBuilderWithScheme("example")
	r.InitialState(resolver.State{Addresses: []resolver.Address{
		discovery.WithName(resolver.Address{Addr: "127.0.0.1:50001"}, "node-b"),
		discovery.WithName(resolver.Address{Addr: "127.0.0.1:50000"}, "node-a"),
	}})
	m, err := discovery.Watch("example:///nodes",
		discovery.Passthrough(grpc.WithTransportCredentials(insecure.NewCredentials())),
		discovery.WithResolvers(r))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer m.Close()

	s, release := m.Acquire()
	for _, mb := range s.Members() {
		fmt.Println(mb.Name, mb.Address.Addr)
	}
	release()

	r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: "127.0.0.1:50002"}}})
	s, release = m.Acquire()
	defer release()
	for _, mb := range s.Members() {
		fmt.Println(mb.Name, mb.Address.Addr)
	}
	// Output:
	// node-a 127.0.0.1:50000
	// node-b 127.0.0.1:50001
	// 127.0.0.1:50002 127.0.0.1:50002
}

// TestResolveOnConnFailure: when a member's connection fails, the resolver
// is asked to resolve again at once, so that a member that stopped is
// dropped as soon as the resolver knows, not at the next refresh; a member
// that answers causes no such request.
func TestResolveOnConnFailure(t *testing.T) {
	down := func() string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer lis.Close()
		return lis.Addr().String()
	}()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()
	up := lis.Addr().String()

	cases := []struct {
		name    string
		addr    string
		code    codes.Code // of a call to the member
		resolve bool
	}{
		{"stopped member", down, codes.Unavailable, true},
		{"serving member", up, codes.Unimplemented, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var asked atomic.Int32
			r := manual.NewBuilderWithScheme("test")
			r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: tc.addr}}})
			// The resolver, asked again, no longer has the member.
			r.ResolveNowCallback = func(resolver.ResolveNowOptions) {
				asked.Add(1)
				r.UpdateState(resolver.State{})
			}
			m, err := discovery.Watch("test:///x", discovery.Passthrough(grpc.WithTransportCredentials(insecure.NewCredentials())),
				discovery.WithResolvers(r), discovery.WithRefresh(0))
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			<-m.Ready()
			snap, release := m.Acquire()
			ms := snap.Members()
			if len(ms) != 1 {
				release()
				t.Fatalf("members %v", ms)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err = ms[0].Conn.Invoke(ctx, "/test.Svc/Method", &emptypb.Empty{}, &emptypb.Empty{})
			release()
			if status.Code(err) != tc.code {
				t.Fatalf("call: %v, want %v", err, tc.code)
			}
			if !tc.resolve {
				if n := asked.Load(); n != 0 {
					t.Fatalf("the resolver was asked %d times", n)
				}
				return
			}
			deadline := time.Now().Add(20 * time.Second)
			for {
				s, release := m.Acquire()
				n := len(s.Members())
				release()
				if n == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the stopped member is still listed; the resolver was asked %d times", asked.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			if asked.Load() == 0 {
				t.Fatal("the member left though the resolver was never asked")
			}
		})
	}
}
