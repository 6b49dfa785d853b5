package metadata_test

import (
	"fmt"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

// Splice the Version responses of two nodes and the failure of a third into
// one response, then read it back as a client would.
func Example() {
	nodeA, _ := proto.Marshal(&clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1.9.0", Node: "a"}}})
	nodeB, _ := proto.Marshal(&clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1.9.1", Node: "b"}}})
	failure := &spb.Status{Code: int32(codes.Unavailable), Message: "connection refused"}

	var l metadata.Layout // the zero Layout is Talos' common.Metadata layout
	var merged []byte
	merged, _ = metadata.AppendEntries(merged, nodeA, metadata.Metadata{Hostname: "node-a"}, l)
	merged, _ = metadata.AppendEntries(merged, nodeB, metadata.Metadata{Hostname: "node-b"}, l)
	merged = metadata.AppendErrorEntry(merged, metadata.Metadata{Hostname: "node-c", Error: failure.Message, Status: failure}, l)

	items, err := metadata.Items(merged, l)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, item := range items {
		md := item.Metadata
		if md.Error != "" {
			fmt.Printf("%s: error %q (%v)\n", md.Hostname, md.Error, codes.Code(md.Status.GetCode()))
			continue
		}
		var v clusterpb.Version
		if err := proto.Unmarshal(item.Raw, &v); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("%s: %s on %s\n", md.Hostname, v.Tag, v.Node)
	}
	// Output:
	// node-a: v1.9.0 on a
	// node-b: v1.9.1 on b
	// node-c: error "connection refused" (Unavailable)
}
