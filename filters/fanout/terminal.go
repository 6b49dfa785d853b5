package fanout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/workers"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Member is one upstream of a fan-out group.
type Member struct {
	// Name identifies the member: clients name it in the nodes header, and
	// it is spliced into every item the member answers as its hostname.
	Name string
	// Conn is the member's shared connection, normally a
	// [cluster.Cluster]'s.
	Conn grpc.ClientConnInterface
}

// Terminal sends each call to many members and merges their answers. It is
// safe for concurrent use.
type Terminal struct {
	// static is the member set of a group made with New; nil for one made
	// with NewDynamic, whose calls each acquire theirs from source.
	static *memberSet
	source MemberSource
	// cache is what was derived from the source's last set, reused while
	// the version stays.
	cache atomic.Pointer[memberSet]
	cfg   Config
	kinds methodkind.Resolver
	stats stats
	// policyText is the policy as observers see it: "all", "first",
	// "quorum:2", with "+fail_fast" when set.
	policyText string
	// workers runs the calls' member goroutines (package workers).
	workers *workers.Pool
}

// maxParkedWorkers bounds the member goroutines that wait between calls
// for the next one: enough for the members of about 85 three-member calls
// in flight. Each keeps a 16 KiB stack (a task that grew it further gives
// the rest back at the next collection): 4 MiB for the group.
const maxParkedWorkers = 256

// memberSet is the members one call goes to, with what the terminal derives
// from them. It is immutable.
type memberSet struct {
	version uint64
	members []Member
	byName  map[string]int
	// mdBufs[i] is member i's metadata field (hostname only), appended
	// as is to every streamed message it answers. A [mem.SliceBuffer]
	// is never freed or changed, so one value serves every message.
	mdBufs []mem.Buffer
}

// newMemberSet checks members and derives the set's lookups.
func newMemberSet(members []Member, layout metadata.Layout) (*memberSet, error) {
	s := &memberSet{members: append([]Member(nil), members...), byName: make(map[string]int, len(members))}
	for i, m := range members {
		switch {
		case m.Name == "":
			return nil, fmt.Errorf("members[%d]: name: required", i)
		case strings.ContainsAny(m.Name, ", \t"):
			return nil, fmt.Errorf("members[%d]: name %q must not contain commas or spaces", i, m.Name)
		case m.Conn == nil:
			return nil, fmt.Errorf("members[%d] (%s): connection: required", i, m.Name)
		}
		if _, dup := s.byName[m.Name]; dup {
			return nil, fmt.Errorf("members[%d]: name %q is used twice", i, m.Name)
		}
		s.byName[m.Name] = i
		s.mdBufs = append(s.mdBufs, mem.SliceBuffer(metadata.AppendMetadataField(nil, metadata.Metadata{Hostname: m.Name}, layout)))
	}
	return s, nil
}

// PolicyKey holds, for a fanned-out call, the group's policy in text form
// ("all", "first", "quorum:2", with "+fail_fast" when set), for logs and
// spans.
var PolicyKey = pipeline.NewKey[string]("fanout.policy")

// New returns a terminal over members, in that order (the default target
// order).
func New(members []Member, cfg Config) (*Terminal, error) {
	t, err := newTerminal(cfg)
	if err != nil {
		return nil, err
	}
	if len(members) == 0 {
		return nil, errors.New("fanout: members: at least one is required")
	}
	if t.static, err = newMemberSet(members, t.cfg.Layout); err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	conns := make([]grpc.ClientConnInterface, len(members))
	for i, m := range members {
		conns[i] = m.Conn
	}
	if t.kinds == nil {
		t.kinds = methodkind.NewReflection(conns)
	}
	return t, nil
}

// NewDynamic returns a terminal whose members come from source, call by
// call: each call acquires the current members once, keeps them until it
// ends, then releases them. A call that finds no member ends with
// UNAVAILABLE. Unless cfg.Kinds is set, method kinds come from the server
// reflection of a current member ([AnyMember]).
func NewDynamic(source MemberSource, cfg Config) (*Terminal, error) {
	if source == nil {
		return nil, errors.New("fanout: a member source is required")
	}
	t, err := newTerminal(cfg)
	if err != nil {
		return nil, err
	}
	t.source = source
	if t.kinds == nil {
		t.kinds = methodkind.NewReflection([]grpc.ClientConnInterface{AnyMember(source)})
	}
	return t, nil
}

func newTerminal(cfg Config) (*Terminal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("fanout: %w", err)
	}
	cfg = cfg.withDefaults()
	t := &Terminal{cfg: cfg, kinds: cfg.Kinds, workers: workers.New(maxParkedWorkers)}
	t.policyText = cfg.Policy.String()
	if cfg.FailFast {
		t.policyText += "+fail_fast"
	}
	return t, nil
}

// acquire returns the members of one call and the function that releases
// them, to be called once when the call no longer uses their connections.
func (t *Terminal) acquire(ctx context.Context) (*memberSet, func(), error) {
	if t.static != nil {
		return t.static, func() {}, nil
	}
	set, release, err := t.source.Acquire(ctx)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, nil, err
		}
		return nil, nil, status.Errorf(codes.Unavailable, "fanout %s: %v", t.cfg.Name, err)
	}
	if len(set.Members) == 0 {
		release()
		return nil, nil, status.Errorf(codes.Unavailable, "fanout %s: no members", t.cfg.Name)
	}
	// Version 0 promises nothing: such a set is derived for this call only.
	if set.Version != 0 {
		if c := t.cache.Load(); c != nil && c.version == set.Version {
			return c, release, nil
		}
	}
	s, err := newMemberSet(set.Members, t.cfg.Layout)
	if err != nil {
		release()
		return nil, nil, status.Errorf(codes.Unavailable, "fanout %s: %v", t.cfg.Name, err)
	}
	if set.Version != 0 {
		s.version = set.Version
		t.cache.Store(s)
	}
	return s, release, nil
}

// Members returns the members' names in order: for a group made with
// NewDynamic, those current now (none while unknown).
func (t *Terminal) Members() []string {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // never wait for a source
	s, release, err := t.acquire(ctx)
	if err != nil {
		return nil
	}
	defer release()
	names := make([]string, len(s.members))
	for i, m := range s.members {
		names[i] = m.Name
	}
	return names
}

// Touches reports that the terminal reads and builds messages itself.
func (t *Terminal) Touches() pipeline.Touch { return pipeline.TouchTerminalMessages }

// Serve fans one call out.
func (t *Terminal) Serve(call *pipeline.Call, down pipeline.ServerStream) error {
	set, release, err := t.acquire(down.Context())
	if err != nil {
		return err
	}
	// Every path out, a panic included, releases the members exactly once.
	defer release()
	targets, named, err := t.targets(call, set)
	if err != nil {
		return err
	}
	kind, err := methodkind.Require(down.Context(), t.kinds, call.Method)
	if err != nil {
		return err
	}
	if p := t.cfg.Policy; p.Mode == Quorum && p.Quorum > len(targets) {
		if !named && t.static == nil {
			// The resolver, not the client, decides how many there are now.
			return status.Errorf(codes.Unavailable, "fanout %s: quorum of %d needs %d members, the resolver has %d", t.cfg.Name, p.Quorum, p.Quorum, len(targets))
		}
		return status.Errorf(codes.InvalidArgument, "fanout: quorum of %d can never be reached with %d targets", p.Quorum, len(targets))
	}
	PolicyKey.Set(call, t.policyText)
	c := newFanCall(t, set, call, down, targets, kind)
	return c.run()
}

// targets returns the members a call goes to, in order, and whether the
// client named them, and removes the selecting header from the outbound
// metadata.
//
// A shortfall the client caused (a bad nodes header) is INVALID_ARGUMENT.
// So is a static group larger than max_targets when the client names no
// target: its size is configuration, and the client must name targets
// every time. A dynamic group that grew past max_targets is UNAVAILABLE
// instead: the resolver's answer, not the request, is at fault, and it may
// shrink again.
func (t *Terminal) targets(call *pipeline.Call, set *memberSet) ([]int, bool, error) {
	vals := call.Header.Get(t.cfg.NodesKey)
	delete(call.Header, t.cfg.NodesKey)
	if len(vals) == 0 {
		if len(set.members) > t.cfg.MaxTargets {
			if t.static == nil {
				return nil, false, status.Errorf(codes.Unavailable, "fanout %s: the resolver has %d members, more than max_targets (%d) per call; name the targets in %q", t.cfg.Name, len(set.members), t.cfg.MaxTargets, t.cfg.NodesKey)
			}
			return nil, false, status.Errorf(codes.InvalidArgument, "fanout: the group has %d members, more than the limit of %d targets per call; name the targets in %q", len(set.members), t.cfg.MaxTargets, t.cfg.NodesKey)
		}
		all := make([]int, len(set.members))
		for i := range all {
			all[i] = i
		}
		return all, false, nil
	}
	var out []int
	seen := make(map[int]bool)
	for _, v := range vals {
		for _, name := range strings.Split(v, ",") {
			name = strings.TrimSpace(name)
			if name == "" {
				continue
			}
			i, ok := set.byName[name]
			if !ok {
				return nil, true, status.Errorf(codes.InvalidArgument, "fanout: %q is not a member of this group", truncate(name, 64))
			}
			if seen[i] {
				continue
			}
			seen[i] = true
			out = append(out, i)
			if len(out) > t.cfg.MaxTargets {
				return nil, true, status.Errorf(codes.InvalidArgument, "fanout: more than %d targets in %q", t.cfg.MaxTargets, t.cfg.NodesKey)
			}
		}
	}
	if len(out) == 0 {
		return nil, true, status.Errorf(codes.InvalidArgument, "fanout: %q names no target", t.cfg.NodesKey)
	}
	return out, true, nil
}

// upstreamDeadline returns the deadline of every upstream call: the
// client's, less the reserve.
func (t *Terminal) upstreamDeadline(ctx context.Context) (time.Time, bool) {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Time{}, false
	}
	remaining := time.Until(d)
	reserve := max(time.Duration(float64(remaining)*t.cfg.ReserveFraction), t.cfg.MinReserve)
	// Never more than half the time left: a short deadline still gets an
	// answer attempt.
	reserve = min(reserve, remaining/2)
	return d.Add(-reserve), true
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Stats are counters of a terminal's work since it was made.
type Stats struct {
	// Calls fanned out.
	Calls int64
	// UpstreamCalls made, one per target per call.
	UpstreamCalls int64
	// UpstreamErrors is how many upstream calls failed or misbehaved.
	UpstreamErrors int64
	// LateHeaders counts upstream response headers that arrived after the
	// merged headers were sent, and were dropped.
	LateHeaders int64
}

type stats struct {
	calls, upstreamCalls, upstreamErrors, lateHeaders atomic.Int64
}

// Stats returns a snapshot of the terminal's counters.
func (t *Terminal) Stats() Stats {
	return Stats{
		Calls:          t.stats.calls.Load(),
		UpstreamCalls:  t.stats.upstreamCalls.Load(),
		UpstreamErrors: t.stats.upstreamErrors.Load(),
		LateHeaders:    t.stats.lateHeaders.Load(),
	}
}

var (
	_ pipeline.Handler = (*Terminal)(nil)
	_ pipeline.Toucher = (*Terminal)(nil)
)
