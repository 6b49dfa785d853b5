package fanout

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/manifold-grpc/manifold/discovery"
)

// MemberSource gives each call the members of a group whose membership
// changes at run time ([NewDynamic]); [Discovered] adapts a
// [discovery.Members]. Implementations must be safe for concurrent use.
type MemberSource interface {
	// Acquire returns the members one call may use and release, which
	// the caller calls exactly once when it no longer uses their
	// connections; until then the connections must stay open. Acquire may
	// wait, bounded by ctx, until members are known. An error that is not
	// a gRPC status ends the call with UNAVAILABLE, prefixed with the
	// group's name ("fanout GROUP: …").
	Acquire(ctx context.Context) (set MemberSet, release func(), err error)
}

// MemberSet is the members one call sees.
type MemberSet struct {
	// Version identifies the set: two sets of one source with the same
	// non-zero version must have the same members and connections, so the
	// terminal reuses what it derived from the first. A source that wants
	// this caching gives every distinct set a distinct non-zero version.
	// Version 0 means "not versioned": the terminal derives its lookups
	// (names, spliced metadata) anew for each call.
	Version uint64
	// Members, in default target order. Names follow [Member]'s rules.
	Members []Member
}

// Discovered returns the members of m as a [MemberSource]. A call made
// before the resolver first spoke waits for it, bounded by the call's
// context. With no member, Acquire fails with "no members (resolver
// TARGET: LAST ERROR)", or "no members (resolver TARGET returned no
// addresses)". The names are [discovery.Member] names; the members are
// ordered by name.
func Discovered(m *discovery.Members) MemberSource {
	return &discovered{m: m}
}

type discovered struct {
	m *discovery.Members
	// last is the conversion of the last snapshot, reused while its
	// version stays. A resolved snapshot's version is never 0. This cache
	// and the terminal's are each rebuilt once per version, not per call:
	// this one turns discovery members into fanout members, shared by
	// every user of the source (the terminal and AnyMember); the
	// terminal's adds its own lookups, which depend on its layout.
	last atomic.Pointer[MemberSet]
}

func (d *discovered) Acquire(ctx context.Context) (MemberSet, func(), error) {
	snap, release := d.m.Acquire()
	if !snap.Resolved() {
		release()
		select {
		case <-d.m.Ready():
		case <-ctx.Done():
			return MemberSet{}, nil, fmt.Errorf("no members (resolver %s: no answer yet: %v)", d.m.Target(), context.Cause(ctx))
		}
		snap, release = d.m.Acquire()
	}
	ms := snap.Members()
	if len(ms) == 0 {
		err := snap.Err()
		release()
		if err != nil {
			return MemberSet{}, nil, fmt.Errorf("no members (resolver %s: %v)", d.m.Target(), err)
		}
		return MemberSet{}, nil, fmt.Errorf("no members (resolver %s returned no addresses)", d.m.Target())
	}
	if l := d.last.Load(); l != nil && l.Version == snap.Version() {
		return *l, release, nil
	}
	set := MemberSet{Version: snap.Version(), Members: make([]Member, len(ms))}
	for i, m := range ms {
		set.Members[i] = Member{Name: m.Name, Conn: m.Conn}
	}
	d.last.Store(&set)
	return set, release, nil
}

var _ MemberSource = (*discovered)(nil)
