package main

import (
	"fmt"
	"slices"

	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/filters/metadata"
)

// checker follows one call's items and finds what went missing.
//
// Every backend numbers the items it sends in one call 0, 1, 2, …, so the
// client knows, per backend, the next number it must see:
//
//   - a number above it is a gap: the items in between were sent (the
//     backend sent a later one) and never arrived. Lost, whatever the
//     call's status.
//   - a number below it is a duplicate or out of order: an anomaly.
//   - when the call ends OK, every backend that did not report an error
//     item must have delivered all request.Count items; the missing tail is
//     lost. (A member's error item, or a call that failed, explains a
//     short tail: the backend was killed, or cancelled, or failed on
//     purpose.)
//
// Fan-out answers carry each item's member in the spliced metadata
// (Talos layout); the checker attributes items by it, checks that it
// agrees with the backend name inside the item, that an error item is the
// member's last word, and, for unary answers, that members' items come in
// member order. One-to-one answers have no metadata; all items must come
// from one backend of the cluster.
type checker struct {
	callID  uint64
	count   int
	members []string // fan-out: the group in target order; one-to-one: the cluster
	fanout  bool

	state     map[string]*memberState
	backend   string // one-to-one: the backend that answered
	lastIndex int    // fan-out unary: member index of the previous item

	received   int
	errorItems int // fan-out members' error items
	lost       int
	anomalies  []string
	lostNotes  []string
}

type memberState struct {
	next    int  // the sequence number expected next
	errored bool // an error item arrived
}

func newChecker(callID uint64, count int, members []string, fanout bool) *checker {
	return &checker{callID: callID, count: count, members: members, fanout: fanout, state: map[string]*memberState{}}
}

func (c *checker) anomaly(format string, args ...any) {
	c.anomalies = append(c.anomalies, fmt.Sprintf(format, args...))
}

func (c *checker) member(name string) *memberState {
	st := c.state[name]
	if st == nil {
		st = &memberState{}
		c.state[name] = st
	}
	return st
}

// streamMessage checks one message of a server stream.
func (c *checker) streamMessage(raw []byte) {
	md, has, err := metadata.ReadMetadata(raw, metadata.Layout{})
	if err != nil {
		c.anomaly("unreadable message: %v", err)
		return
	}
	c.item(raw, md, has)
}

// unaryAnswer checks a unary answer: the entries of its field 1.
func (c *checker) unaryAnswer(raw []byte) {
	items, err := metadata.Items(raw, metadata.Layout{})
	if err != nil {
		c.anomaly("unreadable answer: %v", err)
		return
	}
	for _, it := range items {
		if c.fanout && it.HasMetadata {
			idx := slices.Index(c.members, it.Metadata.Hostname)
			if idx >= 0 && idx < c.lastIndex {
				c.anomaly("item of %s after an item of %s: not in member order", it.Metadata.Hostname, c.members[c.lastIndex])
			}
			c.lastIndex = max(c.lastIndex, idx)
		}
		c.item(it.Raw, it.Metadata, it.HasMetadata)
	}
}

// item checks one item, with its metadata if it has any.
func (c *checker) item(raw []byte, md metadata.Metadata, hasMD bool) {
	it, hasBody, err := parseItem(raw)
	if err != nil {
		c.anomaly("unreadable item: %v", err)
		return
	}
	if !c.fanout {
		if hasMD {
			c.anomaly("one-to-one item with fan-out metadata (hostname %q)", md.Hostname)
		}
		if !hasBody {
			c.anomaly("one-to-one item without a body")
			return
		}
		if !slices.Contains(c.members, it.Backend) {
			c.anomaly("item from %q, not a backend of the cluster", it.Backend)
			return
		}
		if c.backend == "" {
			c.backend = it.Backend
		} else if it.Backend != c.backend {
			c.anomaly("items from both %s and %s in one one-to-one call", c.backend, it.Backend)
		}
		c.sequence(it.Backend, it)
		return
	}
	if !hasMD {
		c.anomaly("fan-out item without metadata (from %q)", it.Backend)
		return
	}
	name := md.Hostname
	if !slices.Contains(c.members, name) {
		c.anomaly("item attributed to %q, not a member", name)
		return
	}
	st := c.member(name)
	if md.Error != "" || !hasBody {
		if hasBody || md.Error == "" || md.Status == nil || codes.Code(md.Status.GetCode()) == codes.OK {
			c.anomaly("malformed error item of %s (body %v, error %q, status %v)", name, hasBody, md.Error, md.Status)
		}
		if st.errored {
			c.anomaly("second error item of %s", name)
		}
		st.errored = true
		c.errorItems++
		return
	}
	if it.Backend != name {
		c.anomaly("item of backend %s attributed to member %s", it.Backend, name)
		return
	}
	c.sequence(name, it)
}

// sequence checks an item's number against the backend's next one.
func (c *checker) sequence(name string, it item) {
	st := c.member(name)
	c.received++
	switch {
	case it.CallID != c.callID:
		c.anomaly("item of call %x in call %x (from %s)", it.CallID, c.callID, name)
	case st.errored:
		c.anomaly("item %d of %s after its error item", it.Seq, name)
	case it.Seq >= uint64(c.count):
		c.anomaly("item %d of %s: only %d were asked for", it.Seq, name, c.count)
	case int(it.Seq) > st.next:
		gap := int(it.Seq) - st.next
		c.lost += gap
		c.lostNotes = append(c.lostNotes, fmt.Sprintf("%s: items %d..%d missing before %d", name, st.next, it.Seq-1, it.Seq))
		st.next = int(it.Seq) + 1
	case int(it.Seq) < st.next:
		c.anomaly("item %d of %s after item %d: duplicate or out of order", it.Seq, name, st.next-1)
	default:
		st.next++
	}
}

// finish accounts for the call's end. On OK every backend that did not
// report an error must have sent everything.
func (c *checker) finish(code codes.Code) {
	if code != codes.OK {
		return
	}
	want := c.members
	if !c.fanout {
		want = nil
		if c.backend != "" {
			want = []string{c.backend}
		} else if c.count > 0 {
			c.lost += c.count
			c.lostNotes = append(c.lostNotes, fmt.Sprintf("OK with none of %d items", c.count))
		}
	}
	for _, name := range want {
		st := c.member(name)
		if st.errored || st.next >= c.count {
			continue
		}
		c.lost += c.count - st.next
		c.lostNotes = append(c.lostNotes, fmt.Sprintf("%s: OK with items %d..%d missing", name, st.next, c.count-1))
	}
}
