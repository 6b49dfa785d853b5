package fanout_test

import (
	"context"
	"fmt"
	"io"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

// BenchmarkFanoutUnary is one Version call fanned out to 3 and 16 members
// and merged. allocs/op counts client, proxy and members together.
func BenchmarkFanoutUnary(b *testing.B) {
	for _, n := range []int{3, 16} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := startGroup(b, n, nil, fanout.Config{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
				if err != nil || len(v.GetMessages()) != n {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkFanoutStream is one Logs call of 10 lines per member, fanned
// out to 3 and 16 members; ns/op and allocs/op are per call.
func BenchmarkFanoutStream(b *testing.B) {
	const lines = 10
	for _, n := range []int{3, 16} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			g := startGroup(b, n, nil, fanout.Config{})
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				s, err := g.client.Logs(ctx, &clusterpb.LogsRequest{Lines: lines})
				if err != nil {
					b.Fatal(err)
				}
				got := 0
				for {
					_, err := s.Recv()
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					got++
				}
				if got != n*lines {
					b.Fatalf("%d lines", got)
				}
			}
		})
	}
}

// BenchmarkOneToOneBaseline makes the same unary call directly to one
// member, for comparison: a 3-member fan-out should cost about three of
// these plus the merge.
func BenchmarkOneToOneBaseline(b *testing.B) {
	addr := serveMachine(b, &machine{name: "n0"})
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	client := clusterpb.NewMachineClient(conn)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Version(ctx, &clusterpb.VersionRequest{}); err != nil {
			b.Fatal(err)
		}
	}
}
