package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// DefaultRefresh is how often [Watch] asks its resolver to resolve again.
// grpc-go's DNS resolver re-resolves only when asked, and at most every 30s
// (see [google.golang.org/grpc/resolver/dns.SetMinResolutionInterval]).
const DefaultRefresh = 30 * time.Second

// Conn is one member's connection: a [*grpc.ClientConn], or anything that
// sends calls and can be closed. The [Members] that dialed it closes it.
type Conn interface {
	grpc.ClientConnInterface
	io.Closer
}

// DialFunc makes the connection of one member address. It is called from the
// resolver's goroutine, so it must not block on the network (grpc.NewClient
// does not). The connection must reach exactly that address and never
// re-resolve: see [Passthrough].
type DialFunc func(addr resolver.Address) (Conn, error)

// Passthrough returns a [DialFunc] that dials "passthrough:///" + the
// address with opts, so that the connection never re-resolves. When the
// resolver gave the address a ServerName, it becomes the connection's
// authority (and the name checked in the upstream's TLS certificate), as
// grpc-go does for its own subchannels.
func Passthrough(opts ...grpc.DialOption) DialFunc {
	return func(addr resolver.Address) (Conn, error) {
		o := slices.Clip(opts)
		if addr.ServerName != "" {
			o = append(o, grpc.WithAuthority(addr.ServerName))
		}
		return grpc.NewClient("passthrough:///"+addr.Addr, o...)
	}
}

// Member is one member of a [Snapshot].
type Member struct {
	// Name identifies the member: its [WithName] attribute, else its
	// address.
	Name string
	// Address is the address the resolver gave.
	Address resolver.Address
	// Conn is the member's connection. It stays open as long as a snapshot
	// holding the member is acquired.
	Conn Conn
}

type options struct {
	resolvers []resolver.Builder
	refresh   time.Duration
	logger    *slog.Logger
}

// Option configures [Watch].
type Option func(*options)

// WithResolvers makes Watch use these builders for their schemes, before
// [FileBuilder] and the resolvers registered with grpc-go, like
// [grpc.WithResolvers] does for a connection. A
// [google.golang.org/grpc/resolver/manual] resolver goes here in tests.
func WithResolvers(b ...resolver.Builder) Option {
	return func(o *options) { o.resolvers = append(o.resolvers, b...) }
}

// WithRefresh sets how often the resolver is asked to resolve again
// (ResolveNow). The default is [DefaultRefresh]; d ≤ 0 never asks, for
// resolvers that watch on their own.
func WithRefresh(d time.Duration) Option {
	return func(o *options) { o.refresh = d }
}

// WithLogger logs membership changes (info) and resolver errors (warn) to l.
// The default logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l != nil {
			o.logger = l
		}
	}
}

// Members is a set of members that follows a resolver. It is safe for
// concurrent use.
type Members struct {
	target string
	dial   DialFunc
	log    *slog.Logger

	cur   atomic.Pointer[Snapshot]
	ready chan struct{} // closed when the resolver first spoke, or on Close

	mu        sync.Mutex // serializes updates
	closed    bool
	version   uint64
	readyOnce sync.Once

	r         resolver.Resolver
	rmu       sync.RWMutex // guards rClosed: no ResolveNow after r.Close
	rClosed   bool
	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Watch starts following target, a grpc target URI such as
// "dns:///nodes.example.svc:50000", "dns://10.0.0.2:53/nodes.test:50000"
// (the DNS server named in the authority) or "file:///etc/manifold/nodes".
// The scheme is required. dial makes each member's connection.
//
// Watch returns once the resolver is built; most resolvers report their
// first addresses later (see [Members.Ready]). Close the Members when done.
//
// The resolver is asked to resolve again every refresh interval
// ([WithRefresh]) and whenever a member's connection enters
// TRANSIENT_FAILURE (see the package doc, "Members that stop").
func Watch(target string, dial DialFunc, opts ...Option) (*Members, error) {
	o := options{refresh: DefaultRefresh, logger: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if dial == nil {
		return nil, errors.New("discovery: a dial function is required")
	}
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("discovery: target %q: %w", target, err)
	}
	b := builderFor(u.Scheme, o.resolvers)
	if b == nil {
		return nil, fmt.Errorf("discovery: target %q: no resolver for scheme %q (want a target like dns:///host:port or file:///path)", target, u.Scheme)
	}
	m := &Members{
		target: target,
		dial:   dial,
		log:    o.logger.With("resolver", target),
		ready:  make(chan struct{}),
		stop:   make(chan struct{}),
	}
	m.cur.Store(newSnapshot(m, nil, 0, nil, false))
	r, err := b.Build(resolver.Target{URL: *u}, (*clientConn)(m), resolver.BuildOptions{DisableServiceConfig: true})
	if err != nil {
		m.shutdown()
		return nil, fmt.Errorf("discovery: target %q: %w", target, err)
	}
	m.r = r
	if o.refresh > 0 {
		m.wg.Add(1)
		go m.refresh(o.refresh)
	}
	return m, nil
}

// builderFor finds the resolver for scheme: the given ones, then the file
// resolver, then grpc-go's registry.
func builderFor(scheme string, given []resolver.Builder) resolver.Builder {
	if scheme == "" {
		return nil
	}
	for _, b := range given {
		if b.Scheme() == scheme {
			return b
		}
	}
	if scheme == FileScheme {
		return FileBuilder{}
	}
	return resolver.Get(scheme)
}

// Target returns the target that m follows.
func (m *Members) Target() string { return m.target }

// Ready is closed once the resolver first reported addresses or an error,
// or m was closed.
func (m *Members) Ready() <-chan struct{} { return m.ready }

// Acquire returns the current snapshot and the function that releases it.
// The snapshot's members and connections stay usable until release is
// called; release must be called once the caller no longer uses them (later
// calls do nothing).
func (m *Members) Acquire() (*Snapshot, func()) {
	for {
		s := m.cur.Load()
		n := s.refs.Load()
		if n == 0 {
			// Replaced and released meanwhile: the current one is newer.
			continue
		}
		if s.refs.CompareAndSwap(n, n+1) {
			var done atomic.Bool
			return s, func() {
				if done.CompareAndSwap(false, true) {
					s.unref()
				}
			}
		}
	}
}

// ResolveNow asks the resolver to resolve again now. Members calls it on
// its own when a member's connection fails (see [Watch]). After Close it
// does nothing.
func (m *Members) ResolveNow() {
	m.rmu.RLock()
	defer m.rmu.RUnlock()
	if m.r != nil && !m.rClosed {
		m.r.ResolveNow(resolver.ResolveNowOptions{})
	}
}

// Close stops the resolver. Acquire then returns an empty snapshot; each
// member's connection is closed once the snapshots that hold it are
// released (at once for members no call uses).
func (m *Members) Close() error {
	m.closeOnce.Do(func() {
		close(m.stop)
		m.wg.Wait()
		m.rmu.Lock()
		m.rClosed = true
		if m.r != nil {
			m.r.Close()
		}
		m.rmu.Unlock()
		m.shutdown()
	})
	return nil
}

// shutdown swaps in an empty, closed snapshot.
func (m *Members) shutdown() {
	m.mu.Lock()
	m.closed = true
	old := m.cur.Load()
	m.version++
	m.cur.Store(newSnapshot(m, nil, m.version, errors.New("closed"), true))
	m.mu.Unlock()
	m.markReady()
	old.unref()
}

func (m *Members) refresh(every time.Duration) {
	defer m.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.ResolveNow()
		case <-m.stop:
			return
		}
	}
}

func (m *Members) markReady() { m.readyOnce.Do(func() { close(m.ready) }) }

// wanted is one member an update asks for.
type wanted struct {
	name string
	addr resolver.Address
}

// update applies the resolver's addresses. It returns an error when the
// update leaves no member, so that polling resolvers try again soon.
func (m *Members) update(st resolver.State) error {
	want, problems := members(st)
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return errors.New("discovery: closed")
	}
	old := m.cur.Load()
	have := make(map[string]*entry, len(old.entries))
	for _, e := range old.entries {
		have[e.name] = e
	}
	entries := make([]*entry, 0, len(want))
	var added []string
	for _, w := range want {
		if e := have[w.name]; e != nil && e.addr == w.addr.Addr {
			e.refs.Add(1)
			entries = append(entries, e)
			delete(have, w.name)
			continue
		}
		conn, err := m.dial(w.addr)
		if err != nil {
			problems = append(problems, fmt.Errorf("member %s: dial %s: %w", w.name, w.addr.Addr, err))
			continue
		}
		e := &entry{m: m, name: w.name, addr: w.addr.Addr, member: Member{Name: w.name, Address: w.addr, Conn: conn}}
		e.refs.Store(1)
		if sc, ok := conn.(stateConn); ok {
			var ctx context.Context
			ctx, e.stopWatch = context.WithCancel(context.Background())
			go e.watch(ctx, sc)
		}
		entries = append(entries, e)
		added = append(added, w.name)
	}
	var removed []string
	for name := range have {
		removed = append(removed, name)
	}
	slices.Sort(removed)
	version := old.version
	if len(added) > 0 || len(removed) > 0 || !old.resolved {
		m.version++
		version = m.version
	}
	err := errors.Join(problems...)
	s := newSnapshot(m, entries, version, err, true)
	m.cur.Store(s)
	m.mu.Unlock()
	m.markReady()
	old.unref()

	if len(added) > 0 || len(removed) > 0 {
		m.log.Info("discovery: members changed", "added", added, "removed", removed, "members", len(entries))
	}
	if err != nil {
		m.log.Warn("discovery: some addresses were ignored", "error", err)
	}
	if len(entries) == 0 {
		return errors.New("discovery: no addresses")
	}
	return nil
}

// reportError records a resolver error; the members stay.
func (m *Members) reportError(err error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	old := m.cur.Load()
	for _, e := range old.entries {
		e.refs.Add(1)
	}
	m.cur.Store(newSnapshot(m, old.entries, old.version, err, true))
	m.mu.Unlock()
	m.markReady()
	old.unref()
	m.log.Warn("discovery: resolver error", "error", err, "members", len(old.entries))
}

// members reads the wanted members of st, sorted by name, and the
// addresses it ignored. Endpoints win over Addresses; an endpoint is one
// member, reached at its first address.
func members(st resolver.State) ([]wanted, []error) {
	var addrs []resolver.Address
	if len(st.Endpoints) > 0 {
		for _, ep := range st.Endpoints {
			if len(ep.Addresses) == 0 {
				continue
			}
			a := ep.Addresses[0]
			if Name(a) == "" {
				if n, ok := ep.Attributes.Value(nameKey{}).(string); ok && n != "" {
					a = WithName(a, n)
				}
			}
			addrs = append(addrs, a)
		}
	} else {
		addrs = st.Addresses
	}
	var want []wanted
	var problems []error
	seen := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		name := Name(a)
		if name == "" {
			name = a.Addr
		}
		switch {
		case name == "":
			problems = append(problems, errors.New("an address is empty"))
			continue
		case strings.ContainsAny(name, ", \t\r\n"):
			problems = append(problems, fmt.Errorf("member name %q contains a comma or white space", name))
			continue
		case seen[name]:
			continue // DNS may repeat an address; a name is one member
		}
		seen[name] = true
		want = append(want, wanted{name: name, addr: a})
	}
	slices.SortFunc(want, func(a, b wanted) int { return strings.Compare(a.name, b.name) })
	return want, problems
}

// entry is one member's connection, referenced by every snapshot that holds
// it; the last to let go closes the connection.
type entry struct {
	m      *Members
	name   string
	addr   string
	member Member
	refs   atomic.Int64
	// stopWatch ends the watch of the connection's state, if any.
	stopWatch context.CancelFunc
}

// stateConn is a connection that reports its state, as a
// [*grpc.ClientConn] does.
type stateConn interface {
	GetState() connectivity.State
	WaitForStateChange(ctx context.Context, s connectivity.State) bool
}

// watch asks the resolver to resolve again each time the member's
// connection enters TRANSIENT_FAILURE: the member may have gone, and the
// resolver may know. grpc-go's channels stay in TRANSIENT_FAILURE until they
// connect again, so this is once per outage; grpc-go's DNS resolver
// rate-limits re-resolution itself. It ends when the connection shuts down
// or ctx ends.
func (e *entry) watch(ctx context.Context, c stateConn) {
	s := c.GetState()
	for c.WaitForStateChange(ctx, s) {
		s = c.GetState()
		switch s {
		case connectivity.TransientFailure:
			e.m.log.Debug("discovery: member connection failed; resolving again", "member", e.name, "address", e.addr)
			e.m.ResolveNow()
		case connectivity.Shutdown:
			return
		}
	}
}

func (e *entry) unref() {
	if e.refs.Add(-1) != 0 {
		return
	}
	if e.stopWatch != nil {
		defer e.stopWatch()
	}
	if err := e.member.Conn.Close(); err != nil {
		e.m.log.Warn("discovery: closing a member's connection", "member", e.name, "error", err)
	}
	e.m.log.Debug("discovery: member connection closed", "member", e.name, "address", e.addr)
}

// Snapshot is one immutable member set. It is safe for concurrent use.
type Snapshot struct {
	m        *Members
	entries  []*entry
	members  []Member
	version  uint64
	err      error
	resolved bool
	// refs counts the holders: the Members while the snapshot is current,
	// and every Acquire not yet released.
	refs atomic.Int64
}

func newSnapshot(m *Members, entries []*entry, version uint64, err error, resolved bool) *Snapshot {
	s := &Snapshot{m: m, entries: entries, version: version, err: err, resolved: resolved}
	s.members = make([]Member, len(entries))
	for i, e := range entries {
		s.members[i] = e.member
	}
	s.refs.Store(1)
	return s
}

func (s *Snapshot) unref() {
	if s.refs.Add(-1) != 0 {
		return
	}
	for _, e := range s.entries {
		e.unref()
	}
}

// Members returns the members, ordered by name. The slice is shared: do not
// modify it.
func (s *Snapshot) Members() []Member { return s.members }

// Version changes whenever the member set does: two snapshots of one
// Members with the same version have the same members and connections.
func (s *Snapshot) Version() uint64 { return s.version }

// Err returns the resolver's last error, or the addresses the last update
// had to ignore; nil when the last update was clean.
func (s *Snapshot) Err() error { return s.err }

// Resolved reports whether the resolver had reported anything when the
// snapshot was taken.
func (s *Snapshot) Resolved() bool { return s.resolved }

// Target returns the resolver target of the Members the snapshot is of.
func (s *Snapshot) Target() string { return s.m.target }

// clientConn is the resolver's view of a Members.
type clientConn Members

func (cc *clientConn) UpdateState(st resolver.State) error { return (*Members)(cc).update(st) }

func (cc *clientConn) ReportError(err error) { (*Members)(cc).reportError(err) }

// NewAddress is the deprecated form of UpdateState.
func (cc *clientConn) NewAddress(addrs []resolver.Address) {
	_ = (*Members)(cc).update(resolver.State{Addresses: addrs})
}

func (cc *clientConn) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{Err: errors.New("discovery: service configs are not used")}
}

var _ resolver.ClientConn = (*clientConn)(nil)
