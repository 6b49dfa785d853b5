package route_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/gzip"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/stats"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/server"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// jsonCodec is a real JSON codec for proto messages, registered as "json"
// so that clients and the backend can use application/grpc+json.
type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)   { return protojson.Marshal(v.(proto.Message)) }
func (jsonCodec) Unmarshal(b []byte, v any) error { return protojson.Unmarshal(b, v.(proto.Message)) }
func (jsonCodec) Name() string                    { return "json" }

func init() { encoding.RegisterCodec(jsonCodec{}) }

// payloadStats records compressed and uncompressed sizes of received
// messages.
type payloadStats struct {
	mu         sync.Mutex
	compressed bool
	n          int
}

func (p *payloadStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (p *payloadStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (p *payloadStats) HandleConn(context.Context, stats.ConnStats) {}
func (p *payloadStats) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		p.mu.Lock()
		p.n++
		p.compressed = in.CompressedLength < in.Length
		p.mu.Unlock()
	}
}

// TestGzipBothWays: a gzip call reaches the backend compressed with gzip,
// and the response reaches the client compressed too.
func TestGzipBothWays(t *testing.T) {
	var backendSaw atomic.Value
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if s, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string }); ok {
				backendSaw.Store(s.RecvCompress())
			}
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
	}
	backendStats := &payloadStats{}
	addr, _ := testbackend.Start(t, svc, grpc.StatsHandler(backendStats))
	clientStats := &payloadStats{}
	env := proxytest.Start(t, addr, proxytest.Config{DialOptions: []grpc.DialOption{grpc.WithStatsHandler(clientStats)}})
	body := bytes.Repeat([]byte("compress me "), 10000)
	resp, err := env.Client.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}}, grpc.UseCompressor(gzip.Name))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp.GetPayload().GetBody(), body) {
		t.Fatal("payload changed")
	}
	if got, _ := backendSaw.Load().(string); got != gzip.Name {
		t.Errorf("backend received grpc-encoding %q, want gzip", got)
	}
	if !backendStats.compressed {
		t.Error("backend received an uncompressed message")
	}
	if !clientStats.compressed {
		t.Error("client received an uncompressed response")
	}
}

// TestContentSubtypeKept: a call made with application/grpc+json reaches
// the backend as application/grpc+json, and a plain application/grpc call
// stays plain.
func TestContentSubtypeKept(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	svc := &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			md, _ := metadata.FromIncomingContext(ctx)
			mu.Lock()
			seen = append(seen, md.Get("content-type")...)
			mu.Unlock()
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("json body")}}
	resp, err := env.Client.UnaryCall(context.Background(), req, grpc.CallContentSubtype("json"))
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.GetPayload().GetBody()) != "json body" {
		t.Errorf("json response body %q", resp.GetPayload().GetBody())
	}
	if _, err := env.Client.UnaryCall(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	want := []string{"application/grpc+json", "application/grpc"}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Errorf("backend saw content-types %q, want %q", seen, want)
	}
}

// TestSlowReaderBoundsHeap: a backend streams 64 MiB to a client that stops
// reading. Flow control must stop the backend; the proxy must not buffer the
// stream. Checked on the heap, not on time.
func TestSlowReaderBoundsHeap(t *testing.T) {
	const (
		msgSize = 64 << 10
		count   = 1024 // 64 MiB in all
	)
	var sent atomic.Int64
	svc := &testbackend.Service{
		ServerStream: func(req *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
			m := &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: make([]byte, msgSize)}}
			for i := 0; i < count; i++ {
				if err := s.Send(m); err != nil {
					return err
				}
				sent.Add(1)
			}
			return nil
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := heapInUse()
	s, err := env.Client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	// Stop reading until the backend stops making progress.
	last := int64(-1)
	for sent.Load() != last && sent.Load() < count {
		last = sent.Load()
		time.Sleep(200 * time.Millisecond)
	}
	stalled := sent.Load()
	peak := heapInUse()
	if stalled >= count {
		t.Fatalf("the backend sent all %d messages while the client read one: something buffers the stream", count)
	}
	if grown := peak - base; grown > 32<<20 {
		t.Errorf("heap grew by %d MiB while the client was not reading (%d messages in flight)", grown>>20, stalled)
	}
	t.Logf("backend stalled after %d of %d messages; heap grew %d KiB", stalled, count, (peak-base)>>10)
	n := 1
	for {
		_, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != count {
		t.Fatalf("got %d messages, want %d", n, count)
	}
}

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// bufferAddrs returns the address of the first byte of each buffer.
func bufferAddrs(data mem.BufferSlice) []uintptr {
	var out []uintptr
	for _, b := range data {
		if d := b.ReadOnlyData(); len(d) > 0 {
			out = append(out, uintptrOf(d))
		}
	}
	return out
}

// recordingCodec is the proxy's codec, recording the buffers it receives
// from grpc-go (Unmarshal) and hands back (Marshal).
type recordingCodec struct {
	rawcodec.Codec
	mu      sync.Mutex
	in, out [][]uintptr
}

func (c *recordingCodec) Marshal(v any) (mem.BufferSlice, error) {
	data, err := c.Codec.Marshal(v)
	c.mu.Lock()
	c.out = append(c.out, bufferAddrs(data))
	c.mu.Unlock()
	return data, err
}

func (c *recordingCodec) Unmarshal(data mem.BufferSlice, v any) error {
	c.mu.Lock()
	c.in = append(c.in, bufferAddrs(data))
	c.mu.Unlock()
	return c.Codec.Unmarshal(data, v)
}

// TestZeroCopy: the buffers grpc-go's server hands the proxy's codec are the
// very buffers the codec hands grpc-go's client for the upstream, and the
// other way round: the proxy never copies a message, whatever its size.
func TestZeroCopy(t *testing.T) {
	downstream := &recordingCodec{} // client side of the proxy
	upstream := &recordingCodec{}   // upstream side
	intercept := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return streamer(ctx, desc, cc, method, append(opts, grpc.ForceCodecV2(upstream))...)
	}
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		ServerOptions: []server.Option{server.WithGRPCOptions(grpc.ForceServerCodecV2(downstream))},
		Cluster:       cluster.Config{DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(intercept)}},
	})
	sizes := []int{16, 64 << 10, 1 << 20}
	for _, size := range sizes {
		body := bytes.Repeat([]byte{7}, size)
		resp, err := env.Client.UnaryCall(context.Background(), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: body}})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(resp.GetPayload().GetBody(), body) {
			t.Fatal("payload changed")
		}
	}
	downstream.mu.Lock()
	defer downstream.mu.Unlock()
	upstream.mu.Lock()
	defer upstream.mu.Unlock()
	if len(downstream.in) != len(sizes) || fmt.Sprint(downstream.in) != fmt.Sprint(upstream.out) {
		t.Errorf("request buffers were copied:\n received %v\n sent     %v", downstream.in, upstream.out)
	}
	if len(upstream.in) != len(sizes) || fmt.Sprint(upstream.in) != fmt.Sprint(downstream.out) {
		t.Errorf("response buffers were copied:\n received %v\n sent     %v", upstream.in, downstream.out)
	}
}

// TestSlowUpstreamBoundsHeap: a client streams 64 MiB to a backend that
// stops reading. Flow control must stop the client; the proxy must not
// buffer the stream.
func TestSlowUpstreamBoundsHeap(t *testing.T) {
	const (
		msgSize = 64 << 10
		count   = 1024
	)
	resume := make(chan struct{})
	svc := &testbackend.Service{
		ClientStream: func(s testpb.TestService_StreamingInputCallServer) error {
			if _, err := s.Recv(); err != nil {
				return err
			}
			<-resume
			n := int32(1)
			for {
				if _, err := s.Recv(); err == io.EOF {
					return s.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: n})
				} else if err != nil {
					return err
				}
				n++
			}
		},
	}
	addr, _ := testbackend.Start(t, svc)
	env := proxytest.Start(t, addr, proxytest.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	base := heapInUse()
	s, err := env.Client.StreamingInputCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	sendErr := make(chan error, 1)
	go func() {
		req := &testpb.StreamingInputCallRequest{Payload: &testpb.Payload{Body: make([]byte, msgSize)}}
		for i := 0; i < count; i++ {
			if err := s.Send(req); err != nil {
				sendErr <- err
				return
			}
			sent.Add(1)
		}
		sendErr <- nil
	}()
	last := int64(-1)
	for sent.Load() != last && sent.Load() < count {
		last = sent.Load()
		time.Sleep(200 * time.Millisecond)
	}
	stalled := sent.Load()
	peak := heapInUse()
	close(resume)
	if stalled >= count {
		t.Fatalf("the client sent all %d messages while the backend read one: something buffers the stream", count)
	}
	if grown := peak - base; grown > 32<<20 {
		t.Errorf("heap grew by %d MiB while the backend was not reading", grown>>20)
	}
	t.Logf("client stalled after %d of %d messages; heap grew %d KiB", stalled, count, (peak-base)>>10)
	if err := <-sendErr; err != nil {
		t.Fatal(err)
	}
	resp, err := s.CloseAndRecv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetAggregatedPayloadSize() != count {
		t.Fatalf("backend got %d messages, want %d", resp.GetAggregatedPayloadSize(), count)
	}
}
