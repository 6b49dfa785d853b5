package pipeline_test

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// benchStream is a ServerStream without a transport for benchmarks: RecvMsg
// hands out the same read-only buffer every time (a mem.SliceBuffer, whose
// Ref and Free do nothing, so no frame ever owns anything to free) and
// SendMsg drops the frame. It allocates nothing and starts no goroutine.
type benchStream struct {
	ctx  context.Context
	data mem.BufferSlice
	sent int
}

func newBenchStream(size int) *benchStream {
	return &benchStream{ctx: context.Background(), data: mem.BufferSlice{mem.SliceBuffer(make([]byte, size))}}
}

func (s *benchStream) Context() context.Context { return s.ctx }

func (s *benchStream) RecvMsg(m any) error {
	m.(*rawcodec.Frame).Data = s.data
	return nil
}

func (s *benchStream) SendMsg(m any) error {
	m.(*rawcodec.Frame).Free()
	s.sent++
	return nil
}

func (s *benchStream) SetHeader(metadata.MD) error  { return nil }
func (s *benchStream) SendHeader(metadata.MD) error { return nil }
func (s *benchStream) SetTrailer(metadata.MD)       {}

var _ pipeline.ServerStream = (*benchStream)(nil)

// echoOnce is the benchmarks' terminal: one request frame in, the same
// frame out, as a unary call through the proxy's data path does.
var echoOnce = pipeline.HandlerFunc(func(_ *pipeline.Call, s pipeline.ServerStream) error {
	var f rawcodec.Frame
	if err := s.RecvMsg(&f); err != nil {
		return err
	}
	return s.SendMsg(&f)
})

// headerFilters returns n filters that only look at the request headers,
// each reading one key as an auth or routing check would.
func headerFilters(n int) []pipeline.Filter {
	fs := make([]pipeline.Filter, n)
	for i := range fs {
		fs[i] = pipeline.RequestHeadersFunc(fmt.Sprintf("headers-%d", i), func(_ context.Context, call *pipeline.Call) error {
			if len(call.Inbound["authorization"]) == 0 {
				return fmt.Errorf("no authorization")
			}
			return nil
		})
	}
	return fs
}

// endFilters returns n filters with request header and response end hooks,
// the shape of an access log or a metrics filter.
func endFilters(n int) []pipeline.Filter {
	fs := make([]pipeline.Filter, n)
	for i := range fs {
		fs[i] = &pipeline.Funcs{
			FilterName:     fmt.Sprintf("end-%d", i),
			RequestHeaders: func(context.Context, *pipeline.Call) error { return nil },
			ResponseEnd: func(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
				if end.Status == nil {
					panic("no status")
				}
			},
		}
	}
	return fs
}

// messageFilters returns n filters with request and response message hooks
// that check each frame's size.
func messageFilters(n int) []pipeline.Filter {
	checkSize := func(_ context.Context, _ *pipeline.Call, f *rawcodec.Frame) error {
		if f.Len() > 1<<20 {
			return fmt.Errorf("frame of %d bytes", f.Len())
		}
		return nil
	}
	fs := make([]pipeline.Filter, n)
	for i := range fs {
		fs[i] = &pipeline.Funcs{FilterName: fmt.Sprintf("messages-%d", i), RequestMessage: checkSize, ResponseMessage: checkSize}
	}
	return fs
}

// BenchmarkChain measures what the chain itself costs one call: Serve over
// a stream without a network, through a terminal that receives and sends
// one 16-byte frame. Each iteration makes a fresh Call, as the server does
// for every call, sharing a prepared outbound header that the filters only
// read. Everything runs on the benchmark's goroutine, so the numbers are
// deterministic: compare the filter counts with each other, not with a
// proxied call (see the load benchmark in docs/performance.md).
func BenchmarkChain(b *testing.B) {
	in := metadata.Pairs("authorization", "Bearer x", "x-request-id", "1234", ":authority", "svc.internal")
	header := pipeline.OutboundHeader(in)
	for _, bc := range []struct {
		name    string
		filters []pipeline.Filter
	}{
		{"empty", nil},
		{"header-only-3", headerFilters(3)},
		{"header-only-10", headerFilters(10)},
		{"header-and-end-3", endFilters(3)},
		{"message-hooks-3", messageFilters(3)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			chain, err := pipeline.Build(bc.filters, echoOnce)
			if err != nil {
				b.Fatal(err)
			}
			stream := newBenchStream(16)
			b.ReportAllocs()
			for b.Loop() {
				call := &pipeline.Call{Method: "/bench.Service/Call", Inbound: in, Header: header}
				if err := chain.Serve(call, stream); err != nil {
					b.Fatal(err)
				}
			}
			if stream.sent == 0 {
				b.Fatal("the terminal sent nothing")
			}
		})
	}
}
