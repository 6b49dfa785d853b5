package main

import (
	"strings"
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const testCall = 0xc0ffee

var (
	trio = []string{"node-1", "node-2", "node-3"}
	pair = []string{"pair-1", "pair-2"}
)

// msg is a stream message from backend with seq, as the proxy delivers it:
// with the fan-out metadata spliced in when fan is set.
func msg(backend string, seq uint64, fan bool) []byte {
	it := appendItem(nil, backend, seq, testCall, []byte("payload"))
	if !fan {
		return it
	}
	return metadata.AppendItem(nil, it, metadata.Metadata{Hostname: backend}, metadata.Layout{})
}

// errMsg is the error item the fan-out sends for a failed member.
func errMsg(member string) []byte {
	st := status.New(codes.Unavailable, "gone")
	return metadata.AppendMetadataField(nil, metadata.Metadata{Hostname: member, Error: st.Err().Error(), Status: st.Proto()}, metadata.Layout{})
}

// seqs are backend's messages first..last-1.
func seqs(backend string, first, last int, fan bool) [][]byte {
	var out [][]byte
	for i := first; i < last; i++ {
		out = append(out, msg(backend, uint64(i), fan))
	}
	return out
}

func cat(parts ...[][]byte) [][]byte {
	var out [][]byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestCheckerStream(t *testing.T) {
	tests := []struct {
		name      string
		fan       bool
		msgs      [][]byte
		code      codes.Code
		lost      int
		errs      int      // error items
		anomalies []string // substrings, in order
	}{
		{name: "one-to-one complete", msgs: seqs("pair-1", 0, 5, false), code: codes.OK},
		{name: "one-to-one gap", msgs: cat(seqs("pair-1", 0, 2, false), seqs("pair-1", 4, 5, false)), code: codes.OK, lost: 2},
		{name: "one-to-one gap on a failed call is still lost", msgs: cat(seqs("pair-1", 0, 1, false), seqs("pair-1", 3, 4, false)), code: codes.Unavailable, lost: 2},
		{name: "one-to-one short tail OK", msgs: seqs("pair-1", 0, 3, false), code: codes.OK, lost: 2},
		{name: "one-to-one short tail failed", msgs: seqs("pair-1", 0, 3, false), code: codes.Unavailable},
		{name: "one-to-one nothing OK", code: codes.OK, lost: 5},
		{name: "one-to-one nothing cancelled", code: codes.Canceled},
		{name: "one-to-one duplicate", msgs: cat(seqs("pair-1", 0, 3, false), seqs("pair-1", 2, 5, false)), code: codes.OK, anomalies: []string{"item 2 of pair-1 after item 2"}},
		{name: "one-to-one two backends", msgs: cat(seqs("pair-1", 0, 5, false), seqs("pair-2", 0, 5, false)), code: codes.OK, anomalies: rep("both pair-1 and pair-2", 5)},
		{name: "one-to-one unknown backend", msgs: seqs("node-1", 0, 5, false), code: codes.OK, lost: 5, anomalies: rep(`"node-1", not a backend`, 5)},
		{name: "one-to-one too many", msgs: seqs("pair-1", 0, 6, false), code: codes.OK, anomalies: []string{"item 5 of pair-1: only 5"}},
		{name: "one-to-one with metadata", msgs: seqs("pair-1", 0, 5, true), code: codes.OK, anomalies: rep("with fan-out metadata", 5)},
		{name: "one-to-one other call", msgs: [][]byte{appendItem(nil, "pair-1", 0, 1, nil)}, code: codes.Canceled, anomalies: []string{"item of call 1 in call c0ffee"}},

		{name: "fan-out interleaved complete", fan: true, code: codes.OK,
			msgs: cat(seqs("node-2", 0, 2, true), seqs("node-1", 0, 5, true), seqs("node-3", 0, 5, true), seqs("node-2", 2, 5, true))},
		{name: "fan-out member failed after a prefix", fan: true, code: codes.OK, errs: 1,
			msgs: cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 2, true), [][]byte{errMsg("node-2")}, seqs("node-3", 0, 5, true))},
		{name: "fan-out member failed at once", fan: true, code: codes.OK, errs: 1,
			msgs: cat(seqs("node-1", 0, 5, true), [][]byte{errMsg("node-2")}, seqs("node-3", 0, 5, true))},
		{name: "fan-out member short without error item", fan: true, code: codes.OK, lost: 3,
			msgs: cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 2, true), seqs("node-3", 0, 5, true))},
		{name: "fan-out member missing", fan: true, code: codes.OK, lost: 5,
			msgs: cat(seqs("node-1", 0, 5, true), seqs("node-3", 0, 5, true))},
		{name: "fan-out member missing on a cancelled call", fan: true, code: codes.Canceled,
			msgs: seqs("node-1", 0, 5, true)},
		{name: "fan-out gap before the error item", fan: true, code: codes.OK, lost: 1, errs: 1,
			msgs: cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 1, true), seqs("node-2", 2, 3, true), [][]byte{errMsg("node-2")}, seqs("node-3", 0, 5, true))},
		{name: "fan-out message after the error item", fan: true, code: codes.OK, errs: 1,
			msgs:      cat(seqs("node-1", 0, 5, true), [][]byte{errMsg("node-2")}, seqs("node-2", 0, 1, true), seqs("node-3", 0, 5, true)),
			anomalies: []string{"item 0 of node-2 after its error item"}},
		{name: "fan-out two error items", fan: true, code: codes.OK, errs: 2,
			msgs:      cat(seqs("node-1", 0, 5, true), [][]byte{errMsg("node-2"), errMsg("node-2")}, seqs("node-3", 0, 5, true)),
			anomalies: []string{"second error item of node-2"}},
		{name: "fan-out misattributed", fan: true, code: codes.OK, lost: 1,
			msgs: cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 4, true), seqs("node-3", 0, 5, true),
				[][]byte{metadata.AppendItem(nil, appendItem(nil, "node-3", 4, testCall, nil), metadata.Metadata{Hostname: "node-2"}, metadata.Layout{})}),
			anomalies: []string{"item of backend node-3 attributed to member node-2"}},
		{name: "fan-out without metadata", fan: true, code: codes.OK, lost: 5,
			msgs:      cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 5, false), seqs("node-3", 0, 5, true)),
			anomalies: rep("without metadata", 5)},
		{name: "fan-out unknown member", fan: true, code: codes.OK,
			msgs:      cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 5, true), seqs("node-3", 0, 5, true), seqs("node-9", 0, 1, true)),
			anomalies: []string{`"node-9", not a member`}},
		{name: "fan-out out of order", fan: true, code: codes.OK,
			msgs:      cat(seqs("node-1", 0, 5, true), seqs("node-2", 0, 5, true), seqs("node-3", 0, 2, true), seqs("node-3", 3, 4, true), seqs("node-3", 2, 3, true), seqs("node-3", 4, 5, true)),
			lost:      1,
			anomalies: []string{"item 2 of node-3 after item 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := pair
			if tt.fan {
				members = trio
			}
			c := newChecker(testCall, 5, members, tt.fan)
			for _, m := range tt.msgs {
				c.streamMessage(m)
			}
			c.finish(tt.code)
			if c.lost != tt.lost {
				t.Errorf("lost = %d, want %d (notes %q)", c.lost, tt.lost, c.lostNotes)
			}
			if c.errorItems != tt.errs {
				t.Errorf("error items = %d, want %d", c.errorItems, tt.errs)
			}
			if (c.lost > 0) != (len(c.lostNotes) > 0) {
				t.Errorf("lost %d with notes %q", c.lost, c.lostNotes)
			}
			checkAnomalies(t, c.anomalies, tt.anomalies)
		})
	}
}

// rep is n copies of s: one anomaly per wrong item.
func rep(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func checkAnomalies(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("anomalies = %q, want %d like %q", got, len(want), want)
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("anomaly %d = %q, want it to contain %q", i, got[i], want[i])
		}
	}
}

// unaryAnswer is a backend's unary answer with items first..last-1.
func unaryAnswer(backend string, first, last int) []byte {
	var items [][]byte
	for i := first; i < last; i++ {
		items = append(items, appendItem(nil, backend, uint64(i), testCall, nil))
	}
	return appendItems(nil, items)
}

// merged is the fan-out's merged answer: each member's answer, or an error
// entry for the members in failed.
func merged(t *testing.T, members []string, failed map[string]bool, count int) []byte {
	t.Helper()
	var out []byte
	for _, m := range members {
		if failed[m] {
			st := status.New(codes.Aborted, "injected")
			out = metadata.AppendErrorEntry(out, metadata.Metadata{Hostname: m, Error: st.Err().Error(), Status: st.Proto()}, metadata.Layout{})
			continue
		}
		var err error
		out, err = metadata.AppendEntries(out, unaryAnswer(m, 0, count), metadata.Metadata{Hostname: m}, metadata.Layout{})
		if err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestCheckerUnary(t *testing.T) {
	tests := []struct {
		name      string
		fan       bool
		answer    func(t *testing.T) []byte
		lost      int
		anomalies []string
	}{
		{name: "one-to-one complete", answer: func(*testing.T) []byte { return unaryAnswer("pair-2", 0, 3) }},
		{name: "one-to-one short", answer: func(*testing.T) []byte { return unaryAnswer("pair-2", 0, 2) }, lost: 1},
		{name: "one-to-one empty", answer: func(*testing.T) []byte { return nil }, lost: 3},
		{name: "fan-out complete", fan: true, answer: func(t *testing.T) []byte { return merged(t, trio, nil, 3) }},
		{name: "fan-out one member failed", fan: true, answer: func(t *testing.T) []byte { return merged(t, trio, map[string]bool{"node-2": true}, 3) }},
		{name: "fan-out member missing", fan: true, answer: func(t *testing.T) []byte { return merged(t, []string{"node-1", "node-3"}, nil, 3) }, lost: 3},
		{name: "fan-out short member", fan: true, answer: func(t *testing.T) []byte {
			b := merged(t, []string{"node-1", "node-2"}, nil, 3)
			b, _ = metadata.AppendEntries(b, unaryAnswer("node-3", 0, 1), metadata.Metadata{Hostname: "node-3"}, metadata.Layout{})
			return b
		}, lost: 2},
		{name: "fan-out not in member order", fan: true, answer: func(t *testing.T) []byte { return merged(t, []string{"node-2", "node-1", "node-3"}, nil, 3) },
			anomalies: rep("item of node-1 after an item of node-2", 3)}, // each of node-1's items
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			members := pair
			if tt.fan {
				members = trio
			}
			c := newChecker(testCall, 3, members, tt.fan)
			c.unaryAnswer(tt.answer(t))
			c.finish(codes.OK)
			if c.lost != tt.lost {
				t.Errorf("lost = %d, want %d (notes %q)", c.lost, tt.lost, c.lostNotes)
			}
			checkAnomalies(t, c.anomalies, tt.anomalies)
		})
	}
}
