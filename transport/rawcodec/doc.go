// Package rawcodec is the pass-through codec that keeps every proxied gRPC
// message in wire form.
//
// grpc-go hands a received message to a codec as a [mem.BufferSlice] of
// reference-counted buffers. [Codec] never decodes it: Unmarshal takes one
// more reference and stores the slice in a [Frame]; Marshal hands that same
// slice back to grpc-go, which writes it and drops the reference. A message
// that crosses the proxy untouched is therefore never copied, concatenated or
// materialized, whatever its size.
//
// The codec works for every content-subtype (proto, json, or any other name),
// because the bytes are never interpreted. Use it with
// [google.golang.org/grpc.ForceServerCodecV2] on the server and
// [google.golang.org/grpc.ForceCodecV2] on client streams.
package rawcodec
