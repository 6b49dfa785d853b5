package route_test

import (
	"context"
	"unsafe"

	"google.golang.org/grpc/metadata"

	"google.golang.org/protobuf/proto"
)

func protoMarshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }

func withBreak(ctx context.Context) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "break", "1")
}
