package rawcodec_test

import (
	"fmt"

	"google.golang.org/grpc/mem"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// A frame holds a message by reference: Unmarshal keeps grpc-go's buffers,
// Marshal gives the same buffers back.
func Example() {
	codec := rawcodec.Codec{}
	received := mem.BufferSlice{mem.SliceBuffer("\x0a\x05hello")}

	var f rawcodec.Frame
	_ = codec.Unmarshal(received, &f)
	fmt.Printf("frame holds %d bytes: %q\n", f.Len(), f.Bytes())

	out, _ := codec.Marshal(&f)
	fmt.Println("same buffer sent:", &out[0].ReadOnlyData()[0] == &received[0].ReadOnlyData()[0])
	fmt.Println("frame empty after send:", f.Data == nil)
	// Output:
	// frame holds 7 bytes: "\n\x05hello"
	// same buffer sent: true
	// frame empty after send: true
}
