package metadata_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal %T: %v", m, err)
	}
	return b
}

// mustMarshal is marshal for package-level test data.
func mustMarshal(m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		panic(err)
	}
	return b
}

func unmarshal(t testing.TB, b []byte, m proto.Message) {
	t.Helper()
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatalf("unmarshal %T from %x: %v", m, b, err)
	}
}

func assertProtoEqual(t testing.TB, got, want proto.Message) {
	t.Helper()
	if !proto.Equal(got, want) {
		t.Errorf("got\n%v\nwant\n%v", prototext.Format(got), prototext.Format(want))
	}
}

// wireField is one top-level field of a message, parsed with protowire.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	val []byte // value of a bytes field
	u   uint64 // value of a varint field
}

// parseWire parses the top-level fields of b, or reports the first error.
func parseWire(b []byte) ([]wireField, error) {
	var fs []wireField
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		if num > protowire.MaxValidNumber {
			return nil, protowire.ParseError(-2)
		}
		b = b[n:]
		f := wireField{num: num, typ: typ}
		switch typ {
		case protowire.BytesType:
			f.val, n = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			f.u, n = protowire.ConsumeVarint(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		fs = append(fs, f)
	}
	return fs, nil
}

func mustParseWire(t testing.TB, b []byte) []wireField {
	t.Helper()
	fs, err := parseWire(b)
	if err != nil {
		t.Fatalf("parse %x: %v", b, err)
	}
	return fs
}
