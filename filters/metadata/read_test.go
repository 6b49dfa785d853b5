package metadata_test

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func mdField(num protowire.Number, inner []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), inner)
}

func stringField(num protowire.Number, s string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), s)
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestReadMetadata(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		item    []byte
		layout  metadata.Layout
		want    metadata.Metadata
		wantOK  bool
		wantErr string
	}{
		{name: "empty item", item: nil},
		{name: "no metadata", item: marshal(t, &clusterpb.Version{Tag: "v1"})},
		{name: "empty metadata", item: mdField(1, nil), wantOK: true},
		{
			name:   "from generated message",
			item:   marshal(t, &clusterpb.Version{Metadata: &clusterpb.Metadata{Hostname: "a", Error: "e", Status: unavailable(t)}, Tag: "v"}),
			want:   metadata.Metadata{Hostname: "a", Error: "e", Status: unavailable(t)},
			wantOK: true,
		},
		{
			name: "occurrences merged",
			item: cat(
				mdField(1, cat(stringField(1, "first"), stringField(2, "kept"), mdField(3, marshal(t, &spb.Status{Code: 5, Message: "m1"})))),
				stringField(2, "tag"),
				mdField(1, cat(stringField(1, "second"), mdField(3, marshal(t, &spb.Status{Code: 14})))),
			),
			want:   metadata.Metadata{Hostname: "second", Error: "kept", Status: &spb.Status{Code: 14, Message: "m1"}},
			wantOK: true,
		},
		{
			name:   "repeated scalar in one occurrence, last wins",
			item:   mdField(1, cat(stringField(1, "x"), stringField(1, "y"))),
			want:   metadata.Metadata{Hostname: "y"},
			wantOK: true,
		},
		{
			name:   "explicit empty string overrides",
			item:   cat(mdField(1, stringField(1, "x")), mdField(1, stringField(1, ""))),
			want:   metadata.Metadata{},
			wantOK: true,
		},
		{
			name:   "metadata field with another wire type is unknown",
			item:   cat(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 3), stringField(2, "t")),
			wantOK: false,
		},
		{
			name:   "inner fields with other wire types are unknown",
			item:   mdField(1, cat(protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1), stringField(1, "h"), protowire.AppendFixed32(protowire.AppendTag(nil, 3, protowire.Fixed32Type), 1), stringField(9, "unknown"))),
			want:   metadata.Metadata{Hostname: "h"},
			wantOK: true,
		},
		{
			name:   "strings are not UTF-8 checked",
			item:   mdField(1, stringField(1, "\xff")),
			want:   metadata.Metadata{Hostname: "\xff"},
			wantOK: true,
		},
		{
			name:   "custom layout",
			item:   cat(stringField(1, "payload"), mdField(15, cat(stringField(2, "h"), stringField(3, "e"), mdField(4, marshal(t, &spb.Status{Code: 3}))))),
			layout: metadata.Layout{MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4},
			want:   metadata.Metadata{Hostname: "h", Error: "e", Status: &spb.Status{Code: 3}},
			wantOK: true,
		},
		{name: "malformed item", item: []byte{0x0a, 0x05}, wantErr: "metadata: malformed message: field 1: unexpected EOF"},
		{name: "malformed metadata", item: mdField(1, []byte{0x0a, 0x05}), wantErr: "metadata: metadata field: malformed message"},
		{name: "malformed status", item: mdField(1, mdField(3, []byte{0x08})), wantErr: "metadata: status:"},
		{name: "status with invalid UTF-8", item: mdField(1, mdField(3, stringField(2, "\xff"))), wantErr: "metadata: status:"},
		{name: "field number too large", item: protowire.AppendTag(nil, 1<<29, protowire.VarintType), wantErr: "metadata: malformed message: field number 536870912 is too large"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md, ok, err := metadata.ReadMetadata(tt.item, tt.layout)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ReadMetadata error = %v, want %q", err, tt.wantErr)
				}
				if ok || md.Hostname != "" || md.Status != nil {
					t.Errorf("ReadMetadata returned %+v, %v with an error", md, ok)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ok != tt.wantOK {
				t.Errorf("ok = %v, want %v", ok, tt.wantOK)
			}
			if md.Hostname != tt.want.Hostname || md.Error != tt.want.Error || !proto.Equal(md.Status, tt.want.Status) {
				t.Errorf("ReadMetadata = %+v, want %+v", md, tt.want)
			}
		})
	}
}

func TestItems(t *testing.T) {
	t.Parallel()
	a := marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1", Node: "a"}}})
	merged, err := metadata.AppendEntries(nil, a, metadata.Metadata{Hostname: "node-a"}, metadata.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	st := unavailable(t)
	merged = metadata.AppendErrorEntry(merged, metadata.Metadata{Hostname: "node-b", Error: "down", Status: st}, metadata.Layout{})
	// An entry without metadata, and a field that is not an item.
	merged = append(merged, mdField(1, marshal(t, &clusterpb.Version{Tag: "bare"}))...)
	merged = append(merged, stringField(2, "not an item")...)

	items, err := metadata.Items(merged, metadata.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 {
		t.Fatalf("got %d items, want 3", len(items))
	}
	var v clusterpb.Version
	unmarshal(t, items[0].Raw, &v)
	assertProtoEqual(t, &v, &clusterpb.Version{Metadata: &clusterpb.Metadata{Hostname: "node-a"}, Tag: "v1", Node: "a"})
	if !items[0].HasMetadata || items[0].Metadata.Hostname != "node-a" || items[0].Metadata.Error != "" || items[0].Metadata.Status != nil {
		t.Errorf("item 0 = %+v", items[0])
	}
	if !items[1].HasMetadata || items[1].Metadata.Hostname != "node-b" || items[1].Metadata.Error != "down" || !proto.Equal(items[1].Metadata.Status, st) {
		t.Errorf("item 1 = %+v", items[1])
	}
	if items[2].HasMetadata || items[2].Metadata != (metadata.Metadata{}) {
		t.Errorf("item 2 = %+v, want no metadata", items[2])
	}
	// Raw aliases the response.
	start := uintptr(unsafe.Pointer(unsafe.SliceData(merged)))
	for i, it := range items {
		p := uintptr(unsafe.Pointer(unsafe.SliceData(it.Raw)))
		if len(it.Raw) > 0 && (p < start || p >= start+uintptr(len(merged))) {
			t.Errorf("item %d Raw does not alias the response", i)
		}
	}

	if items, err := metadata.Items(nil, metadata.Layout{}); err != nil || len(items) != 0 {
		t.Errorf("Items(nil) = %v, %v", items, err)
	}
	if _, err := metadata.Items(mdField(1, []byte{0x0a}), metadata.Layout{}); err == nil || !strings.HasPrefix(err.Error(), "metadata: item 0: ") {
		t.Errorf("Items with a malformed item: error %v", err)
	}
}

func TestMessageItems(t *testing.T) {
	t.Parallel()
	var merged []byte
	for _, host := range []string{"a", "b"} {
		resp := marshal(t, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "t-" + host}}})
		var err error
		merged, err = metadata.AppendEntries(merged, resp, metadata.Metadata{Hostname: host}, metadata.Layout{})
		if err != nil {
			t.Fatal(err)
		}
	}
	var resp clusterpb.VersionResponse
	unmarshal(t, merged, &resp)
	items, err := metadata.MessageItems(&resp, metadata.Layout{})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 2 || items[0].Metadata.Hostname != "a" || items[1].Metadata.Hostname != "b" {
		t.Errorf("MessageItems = %+v", items)
	}
	// A message that does not marshal.
	bad := &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "\xff"}}}
	if _, err := metadata.MessageItems(bad, metadata.Layout{}); err == nil || !strings.HasPrefix(err.Error(), "metadata: ") {
		t.Errorf("MessageItems with invalid UTF-8: error %v", err)
	}
}
