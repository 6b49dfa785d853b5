package metadata_test

import (
	"bytes"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func unavailable(t testing.TB) *spb.Status {
	t.Helper()
	detail, err := anypb.New(durationpb.New(1500_000_000))
	if err != nil {
		t.Fatal(err)
	}
	return &spb.Status{
		Code:    int32(codes.Unavailable),
		Message: "connection refused",
		Details: []*anypb.Any{detail, {TypeUrl: "example.com/raw", Value: []byte{1, 2, 3}}},
	}
}

// statuses covers the encodings of google.rpc.Status that the splice writes
// itself: every field, zero values, negative codes and unknown fields.
func statuses(t testing.TB) map[string]*spb.Status {
	t.Helper()
	withUnknown := &spb.Status{Code: 5, Message: "not found"}
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 99, protowire.VarintType), 7))
	anyUnknown := &anypb.Any{TypeUrl: "t/u"}
	anyUnknown.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 42, protowire.BytesType), "x"))
	return map[string]*spb.Status{
		"empty":          {},
		"code only":      {Code: int32(codes.Internal)},
		"message only":   {Message: "boom"},
		"negative code":  {Code: -1, Message: "negative"},
		"details":        unavailable(t),
		"empty any":      {Code: 2, Details: []*anypb.Any{{}}},
		"unknown fields": withUnknown,
		"any unknown":    {Details: []*anypb.Any{anyUnknown}},
		"long message":   {Code: 13, Message: strings.Repeat("x", 300)},
		"nil any":        {Code: 3, Details: []*anypb.Any{nil}},
	}
}

// TestAppendMetadataFieldMatchesMarshal checks that the hand-written encoding
// is byte for byte what a deterministic proto.Marshal of the generated
// message gives.
func TestAppendMetadataFieldMatchesMarshal(t *testing.T) {
	t.Parallel()
	for name, st := range statuses(t) {
		for _, md := range []metadata.Metadata{
			{Status: st},
			{Hostname: "node-a", Error: "rpc error", Status: st},
		} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				got := metadata.AppendMetadataField(nil, md, metadata.Layout{})
				want := marshal(t, &clusterpb.Version{Metadata: &clusterpb.Metadata{
					Hostname: md.Hostname, Error: md.Error, Status: md.Status,
				}})
				if !bytes.Equal(got, want) {
					t.Errorf("AppendMetadataField = %x\nproto.Marshal       = %x", got, want)
				}
				if n := metadata.MetadataFieldSize(md, metadata.Layout{}); n != len(got) {
					t.Errorf("MetadataFieldSize = %d, appended %d", n, len(got))
				}
			})
		}
	}
}

func TestAppendMetadataField(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		md   metadata.Metadata
		want *clusterpb.Metadata
	}{
		{"empty", metadata.Metadata{}, &clusterpb.Metadata{}},
		{"hostname", metadata.Metadata{Hostname: "node-a"}, &clusterpb.Metadata{Hostname: "node-a"}},
		{"unicode", metadata.Metadata{Hostname: "nœud-ü-😀"}, &clusterpb.Metadata{Hostname: "nœud-ü-😀"}},
		{
			"error",
			metadata.Metadata{Hostname: "node-b", Error: "unavailable", Status: unavailable(t)},
			&clusterpb.Metadata{Hostname: "node-b", Error: "unavailable", Status: unavailable(t)},
		},
		{
			// Invalid UTF-8 would make the message undecodable: each run
			// of bad bytes becomes one U+FFFD.
			"invalid utf8",
			metadata.Metadata{Hostname: "a\xffb", Error: "\xff\xfe\xfdx\xc3", Status: &spb.Status{Message: "m\x80", Details: []*anypb.Any{{TypeUrl: "\xe2\x82"}}}},
			&clusterpb.Metadata{Hostname: "a\uFFFDb", Error: "\uFFFDx\uFFFD", Status: &spb.Status{Message: "m\uFFFD", Details: []*anypb.Any{{TypeUrl: "\uFFFD"}}}},
		},
		{"literal replacement char", metadata.Metadata{Hostname: "\uFFFD\xff"}, &clusterpb.Metadata{Hostname: "\uFFFD\uFFFD"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix")
			out := metadata.AppendMetadataField(prefix, tt.md, metadata.Layout{})
			if !bytes.HasPrefix(out, []byte("prefix")) {
				t.Fatalf("dst prefix lost: %q", out)
			}
			field := out[len(prefix):]
			if n := metadata.MetadataFieldSize(tt.md, metadata.Layout{}); n != len(field) {
				t.Errorf("MetadataFieldSize = %d, appended %d", n, len(field))
			}
			// Appended to an item, the field is the item's metadata.
			item := marshal(t, &clusterpb.Version{Tag: "v1.2.3", Node: "n"})
			var got clusterpb.Version
			unmarshal(t, append(item, field...), &got)
			assertProtoEqual(t, &got, &clusterpb.Version{Metadata: tt.want, Tag: "v1.2.3", Node: "n"})
		})
	}
}

func TestAppendItem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		item proto.Message
		md   metadata.Metadata
		want proto.Message
		dec  proto.Message
	}{
		{
			"log line",
			&clusterpb.LogLine{Text: "started", Seq: 42},
			metadata.Metadata{Hostname: "node-a"},
			&clusterpb.LogLine{Metadata: &clusterpb.Metadata{Hostname: "node-a"}, Text: "started", Seq: 42},
			&clusterpb.LogLine{},
		},
		{
			"echo item",
			&clusterpb.EchoItem{Payload: []byte{0, 1, 2}},
			metadata.Metadata{Hostname: "node-b"},
			&clusterpb.EchoItem{Metadata: &clusterpb.Metadata{Hostname: "node-b"}, Payload: []byte{0, 1, 2}},
			&clusterpb.EchoItem{},
		},
		{
			"empty item",
			&clusterpb.LogLine{},
			metadata.Metadata{Hostname: "node-c"},
			&clusterpb.LogLine{Metadata: &clusterpb.Metadata{Hostname: "node-c"}},
			&clusterpb.LogLine{},
		},
		{
			"existing metadata is merged",
			&clusterpb.LogLine{Metadata: &clusterpb.Metadata{Hostname: "backend-name", Error: "kept"}, Text: "x"},
			metadata.Metadata{Hostname: "node-d"},
			&clusterpb.LogLine{Metadata: &clusterpb.Metadata{Hostname: "node-d", Error: "kept"}, Text: "x"},
			&clusterpb.LogLine{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			item := marshal(t, tt.item)
			orig := bytes.Clone(item)
			out := metadata.AppendItem([]byte{0xaa}, item, tt.md, metadata.Layout{})
			if !bytes.Equal(item, orig) {
				t.Error("AppendItem modified its input")
			}
			if want := 1 + len(item) + metadata.MetadataFieldSize(tt.md, metadata.Layout{}); len(out) != want {
				t.Errorf("appended %d bytes, want %d", len(out)-1, want-1)
			}
			unmarshal(t, out[1:], tt.dec)
			assertProtoEqual(t, tt.dec, tt.want)
		})
	}
}

// TestAppendEntries merges the Version responses of several nodes, as the
// fanout does, and decodes the result with the generated messages.
func TestAppendEntries(t *testing.T) {
	t.Parallel()
	type upstream struct {
		host string
		resp []byte // nil for a failed upstream
		err  *spb.Status
	}
	// A response with a field the merged response has no place for.
	withExtra := marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v3", Node: "c"}}})
	withExtra = protowire.AppendVarint(protowire.AppendTag(withExtra, 7, protowire.VarintType), 1)
	withExtra = protowire.AppendString(protowire.AppendTag(withExtra, 8, protowire.BytesType), "dropped")
	// Items split by another field still come out in order.
	interleaved := marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "i1"}}})
	interleaved = protowire.AppendFixed32(protowire.AppendTag(interleaved, 9, protowire.Fixed32Type), 5)
	interleaved = append(interleaved, marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "i2"}}})...)

	ups := []upstream{
		{host: "node-a", resp: marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1.0.0", Node: "a"}}})},
		{host: "node-b", resp: marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1.1.0", Node: "b1"}, {Tag: "v1.1.0", Node: "b2"}}})},
		{host: "node-x", err: unavailable(t)},
		{host: "node-c", resp: withExtra},
		{host: "node-e", resp: []byte{}}, // no items
		{host: "node-f", resp: marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{}}})},
		{host: "node-g", resp: marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{
			{Metadata: &clusterpb.Metadata{Hostname: "self-reported", Error: "partial"}, Tag: "v2", Node: "g"},
		}})},
		{host: "node-h", resp: interleaved},
		{host: "node-y", err: &spb.Status{Code: int32(codes.DeadlineExceeded), Message: "timeout"}},
	}
	want := &clusterpb.VersionResponse{Messages: []*clusterpb.Version{
		{Metadata: &clusterpb.Metadata{Hostname: "node-a"}, Tag: "v1.0.0", Node: "a"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-b"}, Tag: "v1.1.0", Node: "b1"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-b"}, Tag: "v1.1.0", Node: "b2"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-x", Error: "connection refused", Status: unavailable(t)}},
		{Metadata: &clusterpb.Metadata{Hostname: "node-c"}, Tag: "v3", Node: "c"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-f"}},
		{Metadata: &clusterpb.Metadata{Hostname: "node-g", Error: "partial"}, Tag: "v2", Node: "g"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-h"}, Tag: "i1"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-h"}, Tag: "i2"},
		{Metadata: &clusterpb.Metadata{Hostname: "node-y", Error: "timeout", Status: &spb.Status{Code: int32(codes.DeadlineExceeded), Message: "timeout"}}},
	}}

	var merged []byte
	for _, u := range ups {
		if u.err != nil {
			md := metadata.Metadata{Hostname: u.host, Error: u.err.GetMessage(), Status: u.err}
			before := len(merged)
			merged = metadata.AppendErrorEntry(merged, md, metadata.Layout{})
			if n := metadata.ErrorEntrySize(md, metadata.Layout{}); n != len(merged)-before {
				t.Errorf("%s: ErrorEntrySize = %d, appended %d", u.host, n, len(merged)-before)
			}
			continue
		}
		orig := bytes.Clone(u.resp)
		md := metadata.Metadata{Hostname: u.host}
		size, err := metadata.EntriesSize(u.resp, md, metadata.Layout{})
		if err != nil {
			t.Fatalf("%s: EntriesSize: %v", u.host, err)
		}
		before := len(merged)
		merged, err = metadata.AppendEntries(merged, u.resp, md, metadata.Layout{})
		if err != nil {
			t.Fatalf("%s: AppendEntries: %v", u.host, err)
		}
		if size != len(merged)-before {
			t.Errorf("%s: EntriesSize = %d, appended %d", u.host, size, len(merged)-before)
		}
		if !bytes.Equal(u.resp, orig) {
			t.Errorf("%s: AppendEntries modified its input", u.host)
		}
	}
	var got clusterpb.VersionResponse
	unmarshal(t, merged, &got)
	assertProtoEqual(t, &got, want)
	if unk := got.ProtoReflect().GetUnknown(); len(unk) != 0 {
		t.Errorf("merged response has unknown fields %x, want the extra fields dropped", unk)
	}
}

// TestAppendEntriesEcho splices a client-streaming response whose items hold
// bytes.
func TestAppendEntriesEcho(t *testing.T) {
	t.Parallel()
	resp := marshal(t, &clusterpb.EchoResponse{Messages: []*clusterpb.EchoItem{{Payload: []byte("abc")}, {Payload: bytes.Repeat([]byte{0xff}, 200)}}})
	out, err := metadata.AppendEntries(nil, resp, metadata.Metadata{Hostname: "n1"}, metadata.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	var got clusterpb.EchoResponse
	unmarshal(t, out, &got)
	assertProtoEqual(t, &got, &clusterpb.EchoResponse{Messages: []*clusterpb.EchoItem{
		{Metadata: &clusterpb.Metadata{Hostname: "n1"}, Payload: []byte("abc")},
		{Metadata: &clusterpb.Metadata{Hostname: "n1"}, Payload: bytes.Repeat([]byte{0xff}, 200)},
	}})
}

// TestCustomLayout checks every field number of a non-default layout with
// protowire.
func TestCustomLayout(t *testing.T) {
	t.Parallel()
	l := metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4}
	if err := l.Validate(); err != nil {
		t.Fatal(err)
	}
	item1 := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "first")
	item2 := protowire.AppendVarint(protowire.AppendTag(nil, 2, protowire.VarintType), 99)
	var resp []byte
	resp = protowire.AppendBytes(protowire.AppendTag(resp, 5, protowire.BytesType), item1)
	resp = protowire.AppendVarint(protowire.AppendTag(resp, 1, protowire.VarintType), 3) // not an item
	resp = protowire.AppendBytes(protowire.AppendTag(resp, 1, protowire.BytesType), item2)
	resp = protowire.AppendBytes(protowire.AppendTag(resp, 5, protowire.BytesType), item2)

	st := unavailable(t)
	md := metadata.Metadata{Hostname: "node-a", Error: "degraded", Status: st}
	out, err := metadata.AppendEntries(nil, resp, md, l)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := metadata.EntriesSize(resp, md, l); n != len(out) {
		t.Errorf("EntriesSize = %d, appended %d", n, len(out))
	}
	out = metadata.AppendErrorEntry(out, metadata.Metadata{Hostname: "node-x", Error: "down"}, l)

	entries := mustParseWire(t, out)
	if len(entries) != 3 {
		t.Fatalf("got %d entries, want 3", len(entries))
	}
	for i, wantItem := range [][]byte{item1, item2, nil} {
		e := entries[i]
		if e.num != 5 || e.typ != protowire.BytesType {
			t.Fatalf("entry %d is field %d type %d, want 5 bytes", i, e.num, e.typ)
		}
		if !bytes.HasPrefix(e.val, wantItem) {
			t.Fatalf("entry %d = %x, want prefix %x", i, e.val, wantItem)
		}
		fs := mustParseWire(t, e.val[len(wantItem):])
		if len(fs) != 1 || fs[0].num != 15 || fs[0].typ != protowire.BytesType {
			t.Fatalf("entry %d: metadata %+v, want one field 15", i, fs)
		}
		inner := mustParseWire(t, fs[0].val)
		if i == 2 {
			if len(inner) != 2 || inner[0].num != 2 || string(inner[0].val) != "node-x" || inner[1].num != 3 || string(inner[1].val) != "down" {
				t.Errorf("error entry metadata = %+v", inner)
			}
			continue
		}
		if len(inner) != 3 {
			t.Fatalf("entry %d: %d metadata fields, want 3", i, len(inner))
		}
		if inner[0].num != 2 || string(inner[0].val) != "node-a" {
			t.Errorf("entry %d: hostname field %+v", i, inner[0])
		}
		if inner[1].num != 3 || string(inner[1].val) != "degraded" {
			t.Errorf("entry %d: error field %+v", i, inner[1])
		}
		if inner[2].num != 4 {
			t.Errorf("entry %d: status field number %d, want 4", i, inner[2].num)
		}
		var gotSt spb.Status
		unmarshal(t, inner[2].val, &gotSt)
		assertProtoEqual(t, &gotSt, st)
	}

	// Items reads the same layout back.
	items, err := metadata.Items(out, l)
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Metadata.Hostname != "node-a" || items[1].Metadata.Error != "degraded" ||
		items[2].Metadata.Hostname != "node-x" || items[2].Metadata.Status != nil {
		t.Errorf("Items = %+v", items)
	}
}

// TestMetadataFieldOrder checks that the metadata fields are written in field
// number order, whatever the layout.
func TestMetadataFieldOrder(t *testing.T) {
	t.Parallel()
	md := metadata.Metadata{Hostname: "h", Error: "e", Status: &spb.Status{Code: 1}}
	for _, l := range []metadata.Layout{
		{HostnameField: 1, ErrorField: 2, StatusField: 3},
		{HostnameField: 9, ErrorField: 2, StatusField: 4},
		{HostnameField: 3, ErrorField: 2, StatusField: 1},
		{HostnameField: 2, ErrorField: 3, StatusField: 1},
		{HostnameField: 1 << 20, ErrorField: 5000, StatusField: 20000},
	} {
		fs := mustParseWire(t, metadata.AppendMetadataField(nil, md, l))
		inner := mustParseWire(t, fs[0].val)
		if len(inner) != 3 || inner[0].num >= inner[1].num || inner[1].num >= inner[2].num {
			t.Errorf("layout %+v: fields %+v not in number order", l, inner)
		}
		byNum := map[protowire.Number]string{}
		for _, f := range inner {
			byNum[f.num] = string(f.val)
		}
		if byNum[l.HostnameField] != "h" || byNum[l.ErrorField] != "e" || byNum[l.StatusField] != "\x08\x01" {
			t.Errorf("layout %+v: fields %q", l, byNum)
		}
	}
}

// TestSizes checks every Size function against the bytes its Append
// function adds, for many metadata values and layouts.
func TestSizes(t *testing.T) {
	t.Parallel()
	layouts := []metadata.Layout{
		{},
		{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4},
		{ItemsField: 1 << 28, MetadataField: 20000, HostnameField: 16, ErrorField: 2047, StatusField: 1<<29 - 1},
	}
	mds := []metadata.Metadata{
		{},
		{Hostname: "node-a"},
		{Hostname: strings.Repeat("h", 127)},
		{Hostname: strings.Repeat("h", 128), Error: strings.Repeat("e", 20000)},
		{Hostname: "\xff\xfe bad \xc3", Error: "é\x80"},
	}
	for _, st := range statuses(t) {
		mds = append(mds, metadata.Metadata{Hostname: "x", Status: st})
	}
	resps := [][]byte{
		nil,
		marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "a"}}}),
		marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: strings.Repeat("t", 120)}, {}, {Node: "n"}}}),
	}
	for _, l := range layouts {
		for _, md := range mds {
			n := metadata.MetadataFieldSize(md, l)
			if got := len(metadata.AppendMetadataField(nil, md, l)); got != n {
				t.Errorf("layout %+v md %+v: MetadataFieldSize = %d, appended %d", l, md, n, got)
			}
			item := []byte("\x10\x01")
			if got := len(metadata.AppendItem(nil, item, md, l)); got != len(item)+n {
				t.Errorf("layout %+v md %+v: AppendItem appended %d, want %d", l, md, got, len(item)+n)
			}
			if got, want := len(metadata.AppendErrorEntry(nil, md, l)), metadata.ErrorEntrySize(md, l); got != want {
				t.Errorf("layout %+v md %+v: ErrorEntrySize = %d, appended %d", l, md, want, got)
			}
			for _, r := range resps {
				if l.ItemsField > 1 {
					// Move the items to the layout's field.
					var moved []byte
					for _, f := range mustParseWire(t, r) {
						moved = protowire.AppendBytes(protowire.AppendTag(moved, l.ItemsField, protowire.BytesType), f.val)
					}
					r = moved
				}
				size, err := metadata.EntriesSize(r, md, l)
				if err != nil {
					t.Fatal(err)
				}
				out, err := metadata.AppendEntries(nil, r, md, l)
				if err != nil {
					t.Fatal(err)
				}
				if size != len(out) {
					t.Errorf("layout %+v md %+v: EntriesSize = %d, appended %d", l, md, size, len(out))
				}
				if _, err := parseWire(out); err != nil {
					t.Errorf("layout %+v md %+v: output is not valid wire format: %v", l, md, err)
				}
			}
		}
	}
}

// malformed holds responses that AppendEntries, EntriesSize and Items must
// reject with the default layout.
var malformed = []struct {
	name string
	resp []byte
}{
	{"truncated tag", []byte{0x80}},
	{"field number zero", []byte{0x00, 0x01}},
	{"field number too large", protowire.AppendVarint(protowire.AppendTag(nil, protowire.MaxValidNumber+1, protowire.VarintType), 1)},
	{"field number overflows int32", protowire.AppendVarint(nil, 1<<40)},
	{"reserved wire type 6", []byte{0x0e}},
	{"reserved wire type 7", []byte{0x17, 0x00}},
	{"stray end group", []byte{0x0c}},
	{"unterminated group", []byte{0x13, 0x08, 0x01}},
	{"truncated item length", []byte{0x0a}},
	{"truncated item", []byte{0x0a, 0x05, 'a', 'b'}},
	{"item length overflows", []byte{0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	{"truncated other field", []byte{0x12, 0x03, 'a'}},
	{"truncated varint", []byte{0x10, 0x80}},
	{"truncated fixed64", []byte{0x11, 1, 2, 3}},
	{"truncated fixed32", []byte{0x15, 1}},
	{"good item then garbage", append(mustMarshal(&clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "ok"}}}), 0xff)},
	{"items field is varint", []byte{0x08, 0x01}},
	{"items field is fixed32", []byte{0x0d, 1, 2, 3, 4}},
	{"items field is fixed64", []byte{0x09, 1, 2, 3, 4, 5, 6, 7, 8}},
	{"items field is group", []byte{0x0b, 0x0c}},
}

func TestAppendEntriesMalformed(t *testing.T) {
	t.Parallel()
	md := metadata.Metadata{Hostname: "node-a"}
	for _, tt := range malformed {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := make([]byte, 3, 64)
			copy(dst, "abc")
			out, err := metadata.AppendEntries(dst, tt.resp, md, metadata.Layout{})
			if err == nil {
				t.Fatalf("AppendEntries(%x) = %x, want an error", tt.resp, out)
			}
			if !strings.HasPrefix(err.Error(), "metadata: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if string(out) != "abc" {
				t.Errorf("on error AppendEntries returned %q, want dst unchanged", out)
			}
			if _, err2 := metadata.EntriesSize(tt.resp, md, metadata.Layout{}); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("EntriesSize error = %v, AppendEntries error = %v", err2, err)
			}
			if items, err := metadata.Items(tt.resp, metadata.Layout{}); err == nil {
				t.Errorf("Items(%x) = %+v, want an error", tt.resp, items)
			}
			t.Log(err)
		})
	}
}

// TestAppendEntriesValidUnusual covers valid wire input that is easy to get
// wrong.
func TestAppendEntriesValidUnusual(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		resp      []byte
		wantItems [][]byte
	}{
		{"empty", nil, nil},
		{"only other fields", []byte{0x10, 0x01, 0x1a, 0x00}, nil},
		{"group skipped", []byte{0x13, 0x08, 0x01, 0x14, 0x0a, 0x00}, [][]byte{{}}},
		{"nested group with item-like field", []byte{0x13, 0x0a, 0x00, 0x14}, nil},
		{"non-minimal varint length", []byte{0x0a, 0x81, 0x00, 'x'}, [][]byte{{'x'}}},
		{"non-minimal tag", []byte{0x8a, 0x00, 0x01, 'y'}, [][]byte{{'y'}}},
		{"item need not be a valid message", []byte{0x0a, 0x01, 0xff}, [][]byte{{0xff}}},
	}
	md := metadata.Metadata{Hostname: "n"}
	mdField := metadata.AppendMetadataField(nil, md, metadata.Layout{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			out, err := metadata.AppendEntries(nil, tt.resp, md, metadata.Layout{})
			if err != nil {
				t.Fatal(err)
			}
			fs := mustParseWire(t, out)
			if len(fs) != len(tt.wantItems) {
				t.Fatalf("got %d entries, want %d", len(fs), len(tt.wantItems))
			}
			for i, f := range fs {
				if want := append(bytes.Clone(tt.wantItems[i]), mdField...); f.num != 1 || !bytes.Equal(f.val, want) {
					t.Errorf("entry %d = field %d %x, want field 1 %x", i, f.num, f.val, want)
				}
			}
		})
	}
}

// TestAppendEntriesGrowsDst checks the copy of the first metadata encoding
// when dst is reallocated between entries.
func TestAppendEntriesGrowsDst(t *testing.T) {
	t.Parallel()
	var msgs []*clusterpb.Version
	for range 50 {
		msgs = append(msgs, &clusterpb.Version{Tag: strings.Repeat("v", 30)})
	}
	resp := marshal(t, &clusterpb.VersionResponse{Messages: msgs})
	md := metadata.Metadata{Hostname: "node-a", Error: "e", Status: unavailable(t)}
	for _, c := range []int{0, 1, 64, 1000} {
		out, err := metadata.AppendEntries(make([]byte, 0, c), resp, md, metadata.Layout{})
		if err != nil {
			t.Fatal(err)
		}
		var got clusterpb.VersionResponse
		unmarshal(t, out, &got)
		for i, v := range got.Messages {
			if v.GetMetadata().GetHostname() != "node-a" || !proto.Equal(v.GetMetadata().GetStatus(), md.Status) {
				t.Fatalf("cap %d: item %d metadata %v", c, i, v.GetMetadata())
			}
		}
	}
}

// TestConcurrentUse shares one Metadata, status included, between
// goroutines; run with -race.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	md := metadata.Metadata{Hostname: "node-a", Error: "x", Status: unavailable(t)}
	resp := marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "a"}, {Tag: "b"}}})
	want, err := metadata.AppendEntries(nil, resp, md, metadata.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan []byte)
	for range 8 {
		go func() {
			out, _ := metadata.AppendEntries(nil, resp, md, metadata.Layout{})
			done <- out
		}()
	}
	for range 8 {
		if got := <-done; !bytes.Equal(got, want) {
			t.Errorf("concurrent AppendEntries = %x, want %x", got, want)
		}
	}
}
