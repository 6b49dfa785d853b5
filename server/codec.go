package server

import (
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// codec is the server's one codec. Proxied calls carry *[rawcodec.Frame]
// values and pass through [rawcodec.Codec] untouched; the services the proxy
// answers itself (health, and any registered through [Server.GRPC]) carry
// protobuf messages, which go to grpc-go's proto codec. grpc-go applies a
// forced server codec to every service, so rawcodec alone would fail them.
type codec struct {
	proto encoding.CodecV2
}

func newCodec() codec {
	return codec{proto: encoding.GetCodecV2(grpcproto.Name)}
}

// Marshal encodes v, taking a frame's buffers as rawcodec does.
func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if _, ok := v.(*rawcodec.Frame); ok {
		return rawcodec.Codec{}.Marshal(v)
	}
	return c.proto.Marshal(v)
}

// Unmarshal decodes data into v, referencing the buffers for a frame as
// rawcodec does.
func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if _, ok := v.(*rawcodec.Frame); ok {
		return rawcodec.Codec{}.Unmarshal(data, v)
	}
	return c.proto.Unmarshal(data, v)
}

// Name returns rawcodec's name.
func (codec) Name() string { return rawcodec.Codec{}.Name() }

var _ encoding.CodecV2 = codec{}
