package metadata

import (
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Item is one item of a merged response, as [Items] reads it back.
type Item struct {
	// Raw is the serialized item as received, metadata field included. It
	// aliases the response passed to Items.
	Raw []byte
	// Metadata is the item's metadata, read with [ReadMetadata].
	Metadata Metadata
	// HasMetadata reports whether the item has a metadata field.
	HasMetadata bool
}

// Items reads back the items of resp, a serialized unary response merged by
// the splice, and the metadata of each: every entry of field l.ItemsField, in
// order. It returns an error if resp is not valid protobuf wire format,
// holds field l.ItemsField with a wire type other than bytes, or an item's
// metadata cannot be read (see [ReadMetadata]).
func Items(resp []byte, l Layout) ([]Item, error) {
	l = l.WithDefaults()
	var items []Item
	for it := (entries{b: resp, num: l.ItemsField}); ; {
		raw, ok, err := it.next()
		if err != nil {
			return nil, err
		}
		if !ok {
			return items, nil
		}
		md, has, err := readMetadata(raw, l)
		if err != nil {
			return nil, fmt.Errorf("metadata: item %d: %w", len(items), err)
		}
		items = append(items, Item{Raw: raw, Metadata: md, HasMetadata: has})
	}
}

// MessageItems is [Items] for a client that holds the merged response as a
// generated message: it marshals resp and reads the result.
func MessageItems(resp proto.Message, l Layout) ([]Item, error) {
	b, err := proto.Marshal(resp)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return Items(b, l)
}

// ReadMetadata reads the metadata of item, a serialized item message: field
// l.MetadataField. ok reports whether the field is present. Several
// occurrences are merged as a protobuf decoder merges them: the last hostname
// and error win, statuses are merged with [proto.UnmarshalOptions.Merge].
// Occurrences with an unexpected wire type are skipped, as a decoder keeps
// them as unknown fields. Strings are returned as they are, without a UTF-8
// check. err is set if item or its metadata is not valid wire format, or a
// status does not decode.
func ReadMetadata(item []byte, l Layout) (md Metadata, ok bool, err error) {
	l = l.WithDefaults()
	md, ok, err = readMetadata(item, l)
	if err != nil {
		return Metadata{}, false, fmt.Errorf("metadata: %w", err)
	}
	return md, ok, nil
}

// readMetadata is ReadMetadata with errors not prefixed; l has its defaults.
func readMetadata(item []byte, l Layout) (md Metadata, ok bool, err error) {
	for b := item; len(b) > 0; {
		v, num, typ, n, err := consumeField(b)
		if err != nil {
			return Metadata{}, false, err
		}
		b = b[n:]
		if num != l.MetadataField || typ != protowire.BytesType {
			continue
		}
		ok = true
		if err := mergeMetadata(&md, v, l); err != nil {
			return Metadata{}, false, err
		}
	}
	return md, ok, nil
}

// mergeMetadata merges the serialized metadata message b into md.
func mergeMetadata(md *Metadata, b []byte, l Layout) error {
	for len(b) > 0 {
		v, num, typ, n, err := consumeField(b)
		if err != nil {
			return fmt.Errorf("metadata field: %w", err)
		}
		b = b[n:]
		if typ != protowire.BytesType {
			continue
		}
		switch num {
		case l.HostnameField:
			md.Hostname = string(v)
		case l.ErrorField:
			md.Error = string(v)
		case l.StatusField:
			if md.Status == nil {
				md.Status = new(spb.Status)
			}
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, md.Status); err != nil {
				return fmt.Errorf("status: %w", err)
			}
		}
	}
	return nil
}

// consumeField parses one field of b: its number and wire type, the value of
// a bytes field without its length (nil for other types), and the length of
// the whole field.
func consumeField(b []byte) (v []byte, num protowire.Number, typ protowire.Type, n int, err error) {
	num, typ, n, err = consumeTag(b)
	if err != nil {
		return nil, 0, 0, 0, err
	}
	if typ == protowire.BytesType {
		v, m := protowire.ConsumeBytes(b[n:])
		if m < 0 {
			return nil, 0, 0, 0, fmt.Errorf("malformed message: field %d: %w", num, protowire.ParseError(m))
		}
		return v, num, typ, n + m, nil
	}
	m := protowire.ConsumeFieldValue(num, typ, b[n:])
	if m < 0 {
		return nil, 0, 0, 0, fmt.Errorf("malformed message: field %d: %w", num, protowire.ParseError(m))
	}
	return nil, num, typ, n + m, nil
}
