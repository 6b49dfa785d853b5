package fanout_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// TestBackpressureReachesClient: a member that never reads requests fills
// its queue, then the client's sends block: nothing buffers without bound.
func TestBackpressureReachesClient(t *testing.T) {
	const total = 20000 // 20 MB of requests
	g := startGroup(t, 2, func(i int, m *machine) {
		if i == 0 {
			m.chat = func(s grpc.BidiStreamingServer[clusterpb.EchoRequest, clusterpb.EchoItem]) error {
				<-s.Context().Done()
				return nil
			}
		}
	}, fanout.Config{QueueSize: 4})
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	chat, err := g.client.Chat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Drain n1's echoes so that only n0 holds things up.
	go func() {
		for {
			if _, err := chat.Recv(); err != nil {
				return
			}
		}
	}()
	base := heapInUse()
	var sent atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		req := &clusterpb.EchoRequest{Payload: make([]byte, 1024)}
		for i := 0; i < total; i++ {
			if err := chat.Send(req); err != nil {
				return
			}
			sent.Add(1)
		}
	}()
	last := int64(-1)
	for sent.Load() != last && sent.Load() < total {
		last = sent.Load()
		time.Sleep(200 * time.Millisecond)
	}
	stalled, peak := sent.Load(), heapInUse()
	cancel()
	<-done
	if stalled >= total {
		t.Fatalf("the client sent all %d requests to a member that reads none", total)
	}
	if grown := peak - base; grown > 32<<20 {
		t.Errorf("heap grew by %d MiB", grown>>20)
	}
	t.Logf("client stalled after %d of %d requests; heap grew %d KiB", stalled, total, (peak-base)>>10)
}

// sentBuffers records the first-byte address of every buffer of every
// message a member's client stream sends.
type sentBuffers struct {
	mu   sync.Mutex
	addr map[string][]uintptr
}

func (s *sentBuffers) interceptor(member string) grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, err
		}
		return &recordSend{ClientStream: cs, record: func(data mem.BufferSlice) {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, b := range data {
				if d := b.ReadOnlyData(); len(d) > 0 {
					s.addr[member] = append(s.addr[member], uintptr(unsafe.Pointer(&d[0])))
				}
			}
		}}, nil
	}
}

type recordSend struct {
	grpc.ClientStream
	record func(mem.BufferSlice)
}

func (r *recordSend) SendMsg(m any) error {
	r.record(m.(*rawcodec.Frame).Data)
	return r.ClientStream.SendMsg(m)
}

// TestBroadcastSharesFrames: a request frame broadcast to three members is
// the same buffers for all three, shared by reference count, not copied.
func TestBroadcastSharesFrames(t *testing.T) {
	rec := &sentBuffers{addr: map[string][]uintptr{}}
	var members []fanout.Member
	var closers []server.Option
	for i := 0; i < 3; i++ {
		name := nodeName(i)
		cl, err := cluster.New(cluster.Config{
			Name: name, Target: "passthrough:///" + serveMachine(t, &machine{name: name}),
			DialOptions: []grpc.DialOption{grpc.WithStreamInterceptor(rec.interceptor(name))},
		})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, fanout.Member{Name: name, Conn: cl.Conn()})
		closers = append(closers, server.WithCloser(cl))
	}
	term, err := fanout.New(members, fanout.Config{Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pipeline.Build(nil, term)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := proxytest.Serve(t, chain, closers...)
	client := clusterpb.NewMachineClient(proxytest.Dial(t, proxyAddr))

	up, err := client.Upload(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := up.Send(&clusterpb.EchoRequest{Payload: make([]byte, 32<<10)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := up.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	a, b, c := fmt.Sprint(rec.addr["n0"]), fmt.Sprint(rec.addr["n1"]), fmt.Sprint(rec.addr["n2"])
	if len(rec.addr["n0"]) < 5 || a != b || b != c {
		t.Errorf("members were sent different buffers (copies):\n n0 %s\n n1 %s\n n2 %s", a, b, c)
	}
}
