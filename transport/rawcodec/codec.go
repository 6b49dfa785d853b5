package rawcodec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
)

// Codec is the pass-through [encoding.CodecV2]. Its only message type is
// *[Frame]; any other type is an error, never a silent conversion.
//
// Codec is stateless and safe for concurrent use. Its zero value is ready.
type Codec struct{}

// Marshal hands the frame's buffers to grpc-go without copying. grpc-go owns
// the returned reference and frees it after writing; the frame is left empty.
func (Codec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*Frame)
	if !ok {
		return nil, fmt.Errorf("rawcodec: cannot marshal %T, want *rawcodec.Frame", v)
	}
	data := f.Data
	f.Data = nil
	return data, nil
}

// Unmarshal stores data in the frame, taking one reference: grpc-go frees its
// own reference when Unmarshal returns, the frame keeps the bytes alive.
// Any bytes the frame held before are freed.
func (Codec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*Frame)
	if !ok {
		return fmt.Errorf("rawcodec: cannot unmarshal into %T, want *rawcodec.Frame", v)
	}
	data.Ref()
	f.Data.Free()
	f.Data = data
	return nil
}

// Name returns "". grpc-go uses a forced codec's name only to pick the
// content-subtype of outgoing calls when none was given; an empty name keeps
// a plain "application/grpc" call plain, and the proxy sets any other subtype
// explicitly with [google.golang.org/grpc.CallContentSubtype], so that the
// upstream sees exactly the content-type the client sent.
func (Codec) Name() string { return "" }

var _ encoding.CodecV2 = Codec{}
