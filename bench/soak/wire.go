package main

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// The soak's services have no .proto file: requests and items are built
// and read with protowire, and cross the wire through bytesCodec. Their
// layout, as protobuf:
//
//	message Request {
//	  uint64 call_id = 1;     // echoed in every item
//	  uint64 count = 2;       // stream messages, or unary items, per backend
//	  uint64 size = 3;        // payload bytes per item
//	  uint64 interval_us = 4; // pause before each stream message; a unary
//	                          // call waits count × interval before answering
//	  string fail = 5;        // backend that fails: its name, or "*" for any
//	  uint64 fail_after = 6;  // items it sends before failing
//	}
//	message Item {            // a stream message, or an entry of Items
//	  Metadata metadata = 1;  // left free for the fan-out's splice (Talos layout)
//	  string backend = 2;     // the backend that sent it
//	  uint64 seq = 3;         // 0, 1, 2, … per backend per call
//	  uint64 call_id = 4;
//	  bytes payload = 5;
//	}
//	message Items { repeated Item items = 1; }  // a unary answer
const (
	serviceOne   = "soak.v1.Soak" // routed one-to-one
	serviceFan   = "soak.v1.Fan"  // routed to the fan-out group
	methodUnary  = "Unary"
	methodStream = "Stream"
)

// fullMethod is /service/method.
func fullMethod(service, method string) string { return "/" + service + "/" + method }

// failAny in request.Fail makes every backend fail.
const failAny = "*"

// request is what the client asks a backend for.
type request struct {
	CallID     uint64
	Count      int
	Size       int
	IntervalUS int
	Fail       string
	FailAfter  int
}

func (r *request) marshal() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, r.CallID)
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Count))
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.Size))
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(r.IntervalUS))
	if r.Fail != "" {
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendString(b, r.Fail)
		b = protowire.AppendTag(b, 6, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(r.FailAfter))
	}
	return b
}

// Bounds a backend enforces on requests, so a malformed one cannot make it
// allocate without limit.
const (
	maxCount = 10000
	maxSize  = 1 << 20
)

func parseRequest(b []byte) (*request, error) {
	r := &request{}
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			r.CallID = n
		case num == 2 && typ == protowire.VarintType:
			r.Count = int(min(n, maxCount))
		case num == 3 && typ == protowire.VarintType:
			r.Size = int(min(n, maxSize))
		case num == 4 && typ == protowire.VarintType:
			r.IntervalUS = int(min(n, 10_000_000))
		case num == 5 && typ == protowire.BytesType:
			r.Fail = string(v)
		case num == 6 && typ == protowire.VarintType:
			r.FailAfter = int(min(n, maxCount))
		}
		return nil
	})
	return r, err
}

// item is one item as the client reads it. The metadata field is read by
// filters/metadata, not here.
type item struct {
	Backend string
	Seq     uint64
	CallID  uint64
	Payload int // payload length
}

// appendItem appends a serialized item to b.
func appendItem(b []byte, backend string, seq, callID uint64, payload []byte) []byte {
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, backend)
	b = protowire.AppendTag(b, 3, protowire.VarintType)
	b = protowire.AppendVarint(b, seq)
	b = protowire.AppendTag(b, 4, protowire.VarintType)
	b = protowire.AppendVarint(b, callID)
	b = protowire.AppendTag(b, 5, protowire.BytesType)
	return protowire.AppendBytes(b, payload)
}

// appendItems appends items to b as the entries of field 1: a unary answer.
func appendItems(b []byte, items [][]byte) []byte {
	for _, it := range items {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendBytes(b, it)
	}
	return b
}

// parseItem reads an item, skipping its metadata field. hasBody reports
// whether it holds any field but metadata (an error item does not).
func parseItem(b []byte) (it item, hasBody bool, err error) {
	seenSeq := false
	err = eachField(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == 1:
			return nil // metadata
		case num == 2 && typ == protowire.BytesType:
			it.Backend = string(v)
		case num == 3 && typ == protowire.VarintType:
			it.Seq, seenSeq = n, true
		case num == 4 && typ == protowire.VarintType:
			it.CallID = n
		case num == 5 && typ == protowire.BytesType:
			it.Payload = len(v)
		default:
			return fmt.Errorf("unexpected field %d (wire type %d)", num, typ)
		}
		hasBody = true
		return nil
	})
	if err == nil && hasBody && (it.Backend == "" || !seenSeq) {
		err = errors.New("item without backend or seq")
	}
	return it, hasBody, err
}

// eachField calls fn for every field of b: for bytes fields v is the
// value, for varints n.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var (
			v []byte
			x uint64
		)
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// bytesCodec sends and receives messages as the bytes they are: the
// client and the backends build and read them with protowire. It is named
// "proto" so that the content-type stays application/grpc+proto.
type bytesCodec struct{}

func (bytesCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("soak: bytesCodec cannot marshal %T", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("soak: bytesCodec cannot unmarshal into %T", v)
	}
	// data is only valid during the call: grpc-go frees its buffer after.
	*m = append((*m)[:0], data...)
	return nil
}

func (bytesCodec) Name() string { return "proto" }
