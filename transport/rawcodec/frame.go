package rawcodec

import (
	"google.golang.org/grpc/mem"
)

// Frame is one gRPC message in wire form: the serialized (uncompressed)
// message bytes, held by reference.
//
// # Ownership
//
// A Frame owns exactly one reference to each buffer in Data. The rules follow
// grpc-go's [mem] package:
//
//   - After RecvMsg(&frame) succeeds, the caller owns frame.Data.
//   - SendMsg(&frame) transfers that reference to grpc-go, which frees it
//     once the bytes are written (or the send fails). grpc-go takes it when
//     it marshals the frame, and Marshal sets frame.Data to nil, so that a
//     mistaken second use fails loudly instead of touching a recycled
//     buffer. A send refused before that leaves Data with the caller:
//     calling [Frame.Free] after SendMsg, whatever its result, frees exactly
//     what grpc-go did not take. Stream wrappers that drop a frame must free
//     it with Free or [Frame.Replace], never through Data alone, so that Data
//     is nil afterwards.
//   - The proxy reuses one Frame for every message of a stream: nothing may
//     keep the *Frame (as opposed to its bytes) once SendMsg or RecvMsg has
//     returned.
//   - To keep the bytes while sending them (to several upstreams, or to look
//     at them later), take another reference first with [Frame.Ref] and free
//     it with [Frame.Free].
//   - A filter that replaces Data must [mem.BufferSlice.Free] the slice it
//     replaces.
//   - A Frame that is dropped without being sent must be freed with
//     [Frame.Free].
//
// A Frame is not safe for concurrent use; share the bytes across goroutines
// with Ref, each goroutine holding its own Frame.
type Frame struct {
	// Data holds the message bytes. It may be nil for an empty message.
	Data mem.BufferSlice
}

// NewFrame returns a Frame that holds data, taking over the caller's
// reference.
func NewFrame(data mem.BufferSlice) *Frame { return &Frame{Data: data} }

// FromBytes returns a Frame holding b. The Frame does not copy b, so the
// caller must not modify b afterwards.
func FromBytes(b []byte) *Frame {
	if len(b) == 0 {
		return &Frame{}
	}
	return &Frame{Data: mem.BufferSlice{mem.SliceBuffer(b)}}
}

// Len returns the message size in bytes.
func (f *Frame) Len() int { return f.Data.Len() }

// Bytes returns the message as one contiguous byte slice. When Data is a
// single buffer, Bytes returns that buffer's bytes without copying; the result
// is valid only while the frame holds its reference, and must not be
// modified. Otherwise it copies into a new slice. Use it only in filters that
// must read a message; the proxy's own data path never calls it.
func (f *Frame) Bytes() []byte {
	switch len(f.Data) {
	case 0:
		return nil
	case 1:
		return f.Data[0].ReadOnlyData()
	default:
		return f.Data.Materialize()
	}
}

// Ref takes one more reference to every buffer of the frame and returns a new
// Frame that owns it. The original Frame keeps its own reference.
func (f *Frame) Ref() *Frame {
	f.Data.Ref()
	return &Frame{Data: f.Data}
}

// Free releases the frame's reference and empties it. Free on an empty frame
// is a no-op.
func (f *Frame) Free() {
	f.Data.Free()
	f.Data = nil
}

// Replace swaps the frame's bytes for data, freeing the old reference. The
// frame takes over the caller's reference to data.
func (f *Frame) Replace(data mem.BufferSlice) {
	f.Data.Free()
	f.Data = data
}
