package metadata_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

// The seed corpus is committed under testdata/fuzz/<FuzzName>/ and was made
// from clusterpb messages; f.Add only adds a few hand-made edge cases.

var fuzzLayout = metadata.Layout{ItemsField: 5, MetadataField: 15, HostnameField: 2, ErrorField: 3, StatusField: 4}

var errWireType = errors.New("items field with another wire type")

// referenceEntries lists the entries of field num in resp, checking the wire
// format independently of the package.
func referenceEntries(resp []byte, num protowire.Number) ([][]byte, error) {
	fs, err := parseWire(resp)
	if err != nil {
		return nil, err
	}
	var items [][]byte
	for _, f := range fs {
		if f.num != num {
			continue
		}
		if f.typ != protowire.BytesType {
			return nil, errWireType
		}
		items = append(items, f.val)
	}
	return items, nil
}

func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

func FuzzAppendEntries(f *testing.F) {
	f.Add([]byte{}, "", "", int32(0), false)
	f.Add([]byte{0x0a, 0x00, 0x0a, 0x02, 0x0a, 0x00}, "node-a", "", int32(0), false)
	f.Add([]byte{0x2a, 0x02, 0x7a, 0x00, 0x08, 0x01}, "node-\xff", "err\xfe", int32(-1), true)
	f.Fuzz(func(t *testing.T, resp []byte, hostname, errText string, code int32, custom bool) {
		var l metadata.Layout
		if custom {
			l = fuzzLayout
		}
		l = l.WithDefaults()
		md := metadata.Metadata{Hostname: hostname, Error: errText}
		if code != 0 {
			md.Status = &spb.Status{Code: code, Message: errText}
		}
		wantItems, wantErr := referenceEntries(resp, l.ItemsField)

		// The protobuf decoder itself must agree on what is valid wire
		// format.
		if protoErr := proto.Unmarshal(resp, &emptypb.Empty{}); (protoErr == nil) != (wantErr == nil || wantErr == errWireType) {
			t.Fatalf("reference error %v, proto.Unmarshal error %v", wantErr, protoErr)
		}

		prefix := []byte{0xde, 0xad}
		dst := append(make([]byte, 0, 8), prefix...) // small: AppendEntries grows it
		out, err := metadata.AppendEntries(dst, resp, md, l)
		size, sizeErr := metadata.EntriesSize(resp, md, l)
		if (err == nil) != (wantErr == nil) || (sizeErr == nil) != (err == nil) {
			t.Fatalf("AppendEntries error %v, EntriesSize error %v, want error %v", err, sizeErr, wantErr)
		}
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("dst prefix lost: %x", out)
		}
		if err != nil {
			if len(out) != len(prefix) {
				t.Fatalf("on error AppendEntries returned %x, want dst unchanged", out)
			}
			if !strings.HasPrefix(err.Error(), "metadata: ") {
				t.Fatalf("error %q lacks the package prefix", err)
			}
			return
		}
		spliced := out[len(prefix):]
		if size != len(spliced) {
			t.Fatalf("EntriesSize = %d, appended %d", size, len(spliced))
		}

		// Valid wire format holding exactly the entries, each with the
		// metadata field appended.
		fs, err := parseWire(spliced)
		if err != nil {
			t.Fatalf("output is not valid wire format: %v\n%x", err, spliced)
		}
		if err := proto.Unmarshal(spliced, &emptypb.Empty{}); err != nil {
			t.Fatalf("proto.Unmarshal rejects the output: %v", err)
		}
		mdBytes := metadata.AppendMetadataField(nil, md, l)
		if len(fs) != len(wantItems) {
			t.Fatalf("got %d entries, want %d", len(fs), len(wantItems))
		}
		for i, f := range fs {
			want := append(bytes.Clone(wantItems[i]), mdBytes...)
			if f.num != l.ItemsField || f.typ != protowire.BytesType || !bytes.Equal(f.val, want) {
				t.Fatalf("entry %d = field %d type %d %x, want %x", i, f.num, f.typ, f.val, want)
			}
		}

		// Items reads back every entry with the spliced metadata, merged
		// into what the item already had.
		items, itemsErr := metadata.Items(spliced, l)
		readable := true
		origMDs := make([]metadata.Metadata, len(wantItems))
		for i, item := range wantItems {
			var rerr error
			origMDs[i], _, rerr = metadata.ReadMetadata(item, l)
			readable = readable && rerr == nil
		}
		if !readable {
			return // the appended bytes may even complete a truncated item
		}
		if itemsErr != nil {
			t.Fatalf("Items: %v", itemsErr)
		}
		if len(items) != len(wantItems) {
			t.Fatalf("Items returned %d items, want %d", len(items), len(wantItems))
		}
		for i, item := range items {
			want := origMDs[i]
			if hostname != "" {
				want.Hostname = validUTF8(hostname)
			}
			if errText != "" {
				want.Error = validUTF8(errText)
			}
			if md.Status != nil {
				ours := &spb.Status{Code: code, Message: validUTF8(errText)}
				if want.Status == nil {
					want.Status = ours
				} else {
					proto.Merge(want.Status, ours)
				}
			}
			if !item.HasMetadata || !bytes.Equal(item.Raw, fs[i].val) || item.Metadata.Hostname != want.Hostname ||
				item.Metadata.Error != want.Error || !proto.Equal(item.Metadata.Status, want.Status) {
				t.Fatalf("item %d = %+v, want metadata %+v", i, item, want)
			}
		}
	})
}

func FuzzItems(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 0x0a, 0x00})
	f.Add([]byte{0x0a, 0x04, 0x0a, 0x02, 0x1a, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _, _ = metadata.ReadMetadata(b, metadata.Layout{})
		_, _, _ = metadata.ReadMetadata(b, fuzzLayout)
		_, _ = metadata.Items(b, fuzzLayout)
		items, err := metadata.Items(b, metadata.Layout{})
		for i, item := range items {
			md, ok, rerr := metadata.ReadMetadata(item.Raw, metadata.Layout{})
			if rerr != nil || ok != item.HasMetadata || md.Hostname != item.Metadata.Hostname ||
				md.Error != item.Metadata.Error || !proto.Equal(md.Status, item.Metadata.Status) {
				t.Fatalf("item %d: Items %+v, ReadMetadata %+v %v %v", i, item, md, ok, rerr)
			}
		}

		// Where the generated code decodes b too, both must agree.
		var resp clusterpb.VersionResponse
		if proto.Unmarshal(b, &resp) != nil {
			return
		}
		if err != nil {
			if !strings.Contains(err.Error(), "wire type") {
				t.Fatalf("proto.Unmarshal accepts %x, Items: %v", b, err)
			}
			return // a decoder keeps such a field as unknown
		}
		if len(items) != len(resp.Messages) {
			t.Fatalf("Items returned %d items, proto.Unmarshal %d", len(items), len(resp.Messages))
		}
		for i, v := range resp.Messages {
			got, want := items[i], v.GetMetadata()
			if got.HasMetadata != (want != nil) || got.Metadata.Hostname != want.GetHostname() ||
				got.Metadata.Error != want.GetError() || !proto.Equal(got.Metadata.Status, want.GetStatus()) {
				t.Fatalf("item %d: Items %+v, proto.Unmarshal %v", i, got, want)
			}
		}
	})
}
