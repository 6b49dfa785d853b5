package tracing_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/metric/noop"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/pipeline"
)

// BenchmarkHooks measures the filter's two hooks for one call, against a
// fake call with no network and no server span (the case of a proxy
// without [tracing.ServerHandler], or an unsampled call): what remains is
// the call's state and the two metrics' counts, which the meter provider
// reads only when it collects. The meter provider is the SDK's with a
// manual reader, as in the root BenchmarkBuiltinChain. The calls (and
// their upstream results) are made before the timer runs; every call has
// the same route, cluster and codes, as in steady traffic.
func BenchmarkHooks(b *testing.B) {
	for _, bc := range []struct {
		name    string
		noop    bool
		results []pipeline.UpstreamResult
	}{
		{"one-to-one", false, []pipeline.UpstreamResult{
			{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK, Duration: time.Millisecond},
		}},
		{"fan-out-3", false, []pipeline.UpstreamResult{
			{Upstream: pipeline.Upstream{Cluster: "nodes", Member: "n0"}, Code: codes.OK, Duration: time.Millisecond},
			{Upstream: pipeline.Upstream{Cluster: "nodes", Member: "n1"}, Code: codes.OK, Duration: time.Millisecond},
			{Upstream: pipeline.Upstream{Cluster: "nodes", Member: "n2"}, Code: codes.Unavailable, Duration: time.Millisecond},
		}},
		{"one-to-one/disable-metrics", true, []pipeline.UpstreamResult{
			{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK, Duration: time.Millisecond},
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			var f *tracing.Filter
			if bc.noop {
				var err error
				if f, err = tracing.New(tracing.WithMeterProvider(noop.NewMeterProvider())); err != nil {
					b.Fatal(err)
				}
			} else {
				f = newTelemetry(b).filter(b)
			}
			calls := make([]*pipeline.Call, b.N)
			for i := range calls {
				c := &pipeline.Call{Method: "/users.v1.Users/Get", Route: "users", Inbound: metadata.MD{}, Header: metadata.MD{}}
				for _, r := range bc.results {
					pipeline.RecordUpstream(c, r)
				}
				calls[i] = c
			}
			ctx := context.Background()
			end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
			b.ReportAllocs()
			b.ResetTimer()
			for _, c := range calls {
				if err := f.OnRequestHeaders(ctx, c); err != nil {
					b.Fatal(err)
				}
				f.OnResponseEnd(ctx, c, end)
			}
		})
	}
}

// BenchmarkHooksParallel is [BenchmarkHooks]'s fan-out case from every
// core at once, each goroutine with its own members: the filter's shared
// state (the SDK's series, the filter's caches) under contention.
func BenchmarkHooksParallel(b *testing.B) {
	f := newTelemetry(b).filter(b)
	ctx := context.Background()
	end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
	var worker atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		w := worker.Add(1)
		results := make([]pipeline.UpstreamResult, 3)
		for i := range results {
			results[i] = pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "nodes", Member: fmt.Sprintf("w%d-n%d", w, i)}, Code: codes.OK}
		}
		for pb.Next() {
			c := &pipeline.Call{Method: "/users.v1.Users/Get", Route: "users"}
			if err := f.OnRequestHeaders(ctx, c); err != nil {
				b.Error(err)
				return
			}
			for _, r := range results {
				pipeline.RecordUpstream(c, r)
			}
			f.OnResponseEnd(ctx, c, end)
		}
	})
}
