package metadata_test

import (
	"testing"

	spb "google.golang.org/genproto/googleapis/rpc/status"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func BenchmarkAppendEntries(b *testing.B) {
	resp := marshal(b, &clusterpb.VersionResponse{Messages: []*clusterpb.Version{
		{Tag: "v1.9.0", Node: "node-a-1"},
		{Tag: "v1.9.0", Node: "node-a-2"},
		{Tag: "v1.9.0", Node: "node-a-3"},
	}})
	for _, bb := range []struct {
		name string
		md   metadata.Metadata
	}{
		{"hostname", metadata.Metadata{Hostname: "node-a.cluster.local"}},
		{"status", metadata.Metadata{Hostname: "node-a.cluster.local", Error: "degraded", Status: &spb.Status{Code: 14, Message: "degraded"}}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			size, err := metadata.EntriesSize(resp, bb.md, metadata.Layout{})
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, size)
			b.SetBytes(int64(len(resp)))
			b.ReportAllocs()
			for b.Loop() {
				dst, err = metadata.AppendEntries(dst[:0], resp, bb.md, metadata.Layout{})
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkAppendItem(b *testing.B) {
	item := marshal(b, &clusterpb.LogLine{Text: "kubelet started", Seq: 12345})
	md := metadata.Metadata{Hostname: "node-a.cluster.local"}
	dst := make([]byte, 0, len(item)+metadata.MetadataFieldSize(md, metadata.Layout{}))
	b.ReportAllocs()
	for b.Loop() {
		dst = metadata.AppendItem(dst[:0], item, md, metadata.Layout{})
	}
}
