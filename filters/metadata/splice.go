package metadata

import (
	"fmt"
	"unicode/utf8"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/types/known/anypb"
)

// Metadata is what the splice writes into an item: which upstream produced
// it and, for an error item, why that upstream failed. Empty strings and a
// nil Status are left out of the encoding.
type Metadata struct {
	// Hostname names the upstream that produced the item.
	Hostname string
	// Error is the error text of an upstream that failed.
	Error string
	// Status is the status of an upstream that failed. The splice only
	// reads it; it may be shared by concurrent calls.
	Status *spb.Status
}

// MetadataFieldSize returns the exact number of bytes [AppendMetadataField]
// appends for md.
func MetadataFieldSize(md Metadata, l Layout) int {
	l = l.WithDefaults()
	return fieldSize(l.MetadataField, metadataSize(md, l))
}

// AppendMetadataField appends md to dst, encoded as the length-delimited
// field l.MetadataField, and returns the extended slice. Appended to a
// serialized item it becomes the item's metadata: if the item already had
// one, a decoder merges the two as protobuf does, each field md sets
// replacing the old value. The metadata message holds the fields that md
// sets, in field number order; the field itself is always written, even for
// an empty md.
//
// Strings are written as valid UTF-8, each run of invalid bytes replaced by
// U+FFFD, so that every protobuf decoder accepts them. md.Status is encoded
// exactly as a deterministic [proto.Marshal] would (without failing on
// invalid UTF-8), and never allocates.
//
// [proto.Marshal]: https://pkg.go.dev/google.golang.org/protobuf/proto#Marshal
func AppendMetadataField(dst []byte, md Metadata, l Layout) []byte {
	l = l.WithDefaults()
	return appendMetadataField(dst, md, l, metadataSize(md, l))
}

// AppendItem appends item, a serialized item message, followed by md as its
// metadata field (see [AppendMetadataField]). It is the splice for one
// message of a server stream. dst must not overlap item.
func AppendItem(dst, item []byte, md Metadata, l Layout) []byte {
	l = l.WithDefaults()
	dst = append(dst, item...)
	return appendMetadataField(dst, md, l, metadataSize(md, l))
}

// EntriesSize returns the exact number of bytes [AppendEntries] appends for
// resp and md, or the error AppendEntries would return.
func EntriesSize(resp []byte, md Metadata, l Layout) (int, error) {
	l = l.WithDefaults()
	mdField := fieldSize(l.MetadataField, metadataSize(md, l))
	size := 0
	for it := (entries{b: resp, num: l.ItemsField}); ; {
		item, ok, err := it.next()
		if err != nil {
			return 0, err
		}
		if !ok {
			return size, nil
		}
		size += fieldSize(l.ItemsField, len(item)+mdField)
	}
}

// AppendEntries appends every entry of field l.ItemsField of resp, a
// serialized unary response, each with md spliced in as its metadata, and
// returns the extended slice. For each entry, in order, it writes
//
//	tag(ItemsField, bytes) varint(len(item)+MetadataFieldSize) item metadata-field
//
// so the output concatenated with other upstreams' outputs is a valid
// response that holds all of their items. Other fields of resp are dropped.
// resp is never decoded beyond its top-level fields.
//
// AppendEntries returns an error, and dst with its original length, if resp
// is not valid protobuf wire format or holds field l.ItemsField with a wire
// type other than bytes. dst must not overlap resp. With enough capacity in
// dst (see [EntriesSize]) it does not allocate.
func AppendEntries(dst, resp []byte, md Metadata, l Layout) ([]byte, error) {
	l = l.WithDefaults()
	inner := metadataSize(md, l)
	mdField := fieldSize(l.MetadataField, inner)
	n0 := len(dst)
	mdStart, mdEnd := -1, -1
	for it := (entries{b: resp, num: l.ItemsField}); ; {
		item, ok, err := it.next()
		if err != nil {
			return dst[:n0], err
		}
		if !ok {
			return dst, nil
		}
		dst = protowire.AppendTag(dst, l.ItemsField, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(len(item)+mdField))
		dst = append(dst, item...)
		if mdStart < 0 {
			mdStart = len(dst)
			dst = appendMetadataField(dst, md, l, inner)
			mdEnd = len(dst)
		} else {
			// The metadata is the same for every entry: copy the first
			// encoding. append reads the old array if it reallocates.
			dst = append(dst, dst[mdStart:mdEnd]...)
		}
	}
}

// ErrorEntrySize returns the exact number of bytes [AppendErrorEntry]
// appends for md.
func ErrorEntrySize(md Metadata, l Layout) int {
	l = l.WithDefaults()
	return fieldSize(l.ItemsField, fieldSize(l.MetadataField, metadataSize(md, l)))
}

// AppendErrorEntry appends one entry of field l.ItemsField whose item holds
// only md: the error item that stands in a unary response for an upstream
// that failed. For a server stream, the error message is
// AppendMetadataField(nil, md, l) on its own.
func AppendErrorEntry(dst []byte, md Metadata, l Layout) []byte {
	l = l.WithDefaults()
	inner := metadataSize(md, l)
	dst = protowire.AppendTag(dst, l.ItemsField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(fieldSize(l.MetadataField, inner)))
	return appendMetadataField(dst, md, l, inner)
}

// entries iterates over the length-delimited entries of field num in the
// serialized message b, checking the wire format of every top-level field.
type entries struct {
	b   []byte
	num protowire.Number
}

// next returns the next entry; ok is false at the end of the message.
func (e *entries) next() (item []byte, ok bool, err error) {
	for len(e.b) > 0 {
		num, typ, n, err := consumeTag(e.b)
		if err != nil {
			return nil, false, fmt.Errorf("metadata: %w", err)
		}
		e.b = e.b[n:]
		if num == e.num {
			if typ != protowire.BytesType {
				return nil, false, fmt.Errorf("metadata: items field %d has wire type %s, want bytes (length-delimited)", num, wireTypeName(typ))
			}
			v, n := protowire.ConsumeBytes(e.b)
			if n < 0 {
				return nil, false, fmt.Errorf("metadata: malformed message: field %d: %w", num, protowire.ParseError(n))
			}
			e.b = e.b[n:]
			return v, true, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, e.b)
		if n < 0 {
			return nil, false, fmt.Errorf("metadata: malformed message: field %d: %w", num, protowire.ParseError(n))
		}
		e.b = e.b[n:]
	}
	return nil, false, nil
}

// consumeTag is [protowire.ConsumeTag] that also rejects field numbers above
// [protowire.MaxValidNumber], as the protobuf decoder does.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int, error) {
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 {
		return 0, 0, 0, fmt.Errorf("malformed message: %w", protowire.ParseError(n))
	}
	if num > protowire.MaxValidNumber {
		return 0, 0, 0, fmt.Errorf("malformed message: field number %d is too large", num)
	}
	return num, typ, n, nil
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "bytes"
	case protowire.StartGroupType:
		return "start group"
	case protowire.EndGroupType:
		return "end group"
	}
	return fmt.Sprintf("%d", t)
}

// fieldSize is the size of a length-delimited field of n bytes.
func fieldSize(num protowire.Number, n int) int {
	return protowire.SizeTag(num) + protowire.SizeBytes(n)
}

// metadataSize is the size of the metadata message, without its tag and
// length.
func metadataSize(md Metadata, l Layout) int {
	n := stringFieldSize(l.HostnameField, md.Hostname) + stringFieldSize(l.ErrorField, md.Error)
	if md.Status != nil {
		n += fieldSize(l.StatusField, statusSize(md.Status))
	}
	return n
}

// appendMetadataField appends md as field l.MetadataField; inner is
// metadataSize(md, l). The fields go in field number order, as a protobuf
// encoder writes them.
func appendMetadataField(dst []byte, md Metadata, l Layout, inner int) []byte {
	dst = protowire.AppendTag(dst, l.MetadataField, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(inner))
	order := [3]protowire.Number{l.HostnameField, l.ErrorField, l.StatusField}
	if order[0] > order[1] {
		order[0], order[1] = order[1], order[0]
	}
	if order[1] > order[2] {
		order[1], order[2] = order[2], order[1]
	}
	if order[0] > order[1] {
		order[0], order[1] = order[1], order[0]
	}
	for _, num := range order {
		switch num {
		case l.HostnameField:
			dst = appendStringField(dst, num, md.Hostname)
		case l.ErrorField:
			dst = appendStringField(dst, num, md.Error)
		case l.StatusField:
			if md.Status != nil {
				dst = protowire.AppendTag(dst, num, protowire.BytesType)
				dst = protowire.AppendVarint(dst, uint64(statusSize(md.Status)))
				dst = appendStatus(dst, md.Status)
			}
		}
	}
	return dst
}

// google.rpc.Status and google.protobuf.Any field numbers.
const (
	statusCode    protowire.Number = 1
	statusMessage protowire.Number = 2
	statusDetails protowire.Number = 3
	anyTypeURL    protowire.Number = 1
	anyValue      protowire.Number = 2
)

// statusSize is the size of st as proto.Size reports it, with strings made
// valid UTF-8.
func statusSize(st *spb.Status) int {
	n := 0
	if st.Code != 0 {
		n += protowire.SizeTag(statusCode) + protowire.SizeVarint(uint64(int64(st.Code)))
	}
	n += stringFieldSize(statusMessage, st.Message)
	for _, d := range st.Details {
		n += fieldSize(statusDetails, anySize(d))
	}
	return n + len(st.ProtoReflect().GetUnknown())
}

// appendStatus appends st as a deterministic proto.Marshal does: known
// fields in field number order, then unknown fields.
func appendStatus(dst []byte, st *spb.Status) []byte {
	if st.Code != 0 {
		dst = protowire.AppendTag(dst, statusCode, protowire.VarintType)
		dst = protowire.AppendVarint(dst, uint64(int64(st.Code)))
	}
	dst = appendStringField(dst, statusMessage, st.Message)
	for _, d := range st.Details {
		dst = protowire.AppendTag(dst, statusDetails, protowire.BytesType)
		dst = protowire.AppendVarint(dst, uint64(anySize(d)))
		dst = appendAny(dst, d)
	}
	return append(dst, st.ProtoReflect().GetUnknown()...)
}

// anySize is the size of a; a nil element encodes as an empty message, as
// proto.Marshal does.
func anySize(a *anypb.Any) int {
	if a == nil {
		return 0
	}
	n := stringFieldSize(anyTypeURL, a.TypeUrl)
	if len(a.Value) > 0 {
		n += fieldSize(anyValue, len(a.Value))
	}
	return n + len(a.ProtoReflect().GetUnknown())
}

func appendAny(dst []byte, a *anypb.Any) []byte {
	if a == nil {
		return dst
	}
	dst = appendStringField(dst, anyTypeURL, a.TypeUrl)
	if len(a.Value) > 0 {
		dst = protowire.AppendTag(dst, anyValue, protowire.BytesType)
		dst = protowire.AppendBytes(dst, a.Value)
	}
	return append(dst, a.ProtoReflect().GetUnknown()...)
}

// stringFieldSize is the size of a proto3 string field holding s: nothing
// when s is empty.
func stringFieldSize(num protowire.Number, s string) int {
	if s == "" {
		return 0
	}
	return fieldSize(num, validUTF8Len(s))
}

func appendStringField(dst []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(validUTF8Len(s)))
	return appendValidUTF8(dst, s)
}

const replacementChar = "\uFFFD"

// validUTF8Len is len(strings.ToValidUTF8(s, "\uFFFD")).
func validUTF8Len(s string) int {
	if utf8.ValidString(s) {
		return len(s)
	}
	n, bad := 0, false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		if r == utf8.RuneError && size == 1 {
			if !bad {
				n += len(replacementChar)
			}
			bad = true
			continue
		}
		n += size
		bad = false
	}
	return n
}

// appendValidUTF8 appends strings.ToValidUTF8(s, "\uFFFD") without
// allocating.
func appendValidUTF8(dst []byte, s string) []byte {
	if utf8.ValidString(s) {
		return append(dst, s...)
	}
	bad := false
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			if !bad {
				dst = append(dst, replacementChar...)
			}
			bad = true
		} else {
			dst = append(dst, s[i:i+size]...)
			bad = false
		}
		i += size
	}
	return dst
}
