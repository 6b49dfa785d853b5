package fanout_test

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse)
}

// TestManyMessagesSlowClient: three members stream 10,000 messages each to a
// client that stops reading for a while. Nothing deadlocks, the members are
// held back by flow control instead of the proxy buffering, and every
// message arrives in its member's order.
func TestManyMessagesSlowClient(t *testing.T) {
	const n, count = 3, 10000
	var sent atomic.Int64
	g := startGroup(t, n, func(i int, m *machine) {
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			line := &clusterpb.LogLine{Text: string(make([]byte, 1024))}
			for k := 0; k < count; k++ {
				line.Seq = int64(k)
				if err := s.Send(line); err != nil {
					return err
				}
				sent.Add(1)
			}
			return nil
		}
	}, fanout.Config{})
	base := heapInUse()
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	last := int64(-1)
	for sent.Load() != last && sent.Load() < n*count {
		last = sent.Load()
		time.Sleep(200 * time.Millisecond)
	}
	stalled, peak := sent.Load(), heapInUse()
	if stalled >= n*count {
		t.Fatalf("members sent all %d messages while the client read one: the proxy buffers", n*count)
	}
	if grown := peak - base; grown > 48<<20 {
		t.Errorf("heap grew by %d MiB while the client was not reading", grown>>20)
	}
	t.Logf("members stalled after %d of %d messages; heap grew %d KiB", stalled, n*count, (peak-base)>>10)
	next := map[string]int64{}
	got := 1
	for {
		line, err := s.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got++
		h := line.GetMetadata().GetHostname()
		if line.GetSeq() < next[h] {
			t.Fatalf("%s: seq %d after %d", h, line.GetSeq(), next[h])
		}
		next[h] = line.GetSeq() + 1
	}
	if got != n*count {
		t.Fatalf("got %d messages, want %d", got, n*count)
	}
}

// TestSlowMemberDoesNotStallBroadcast: in a bidi call, one member stops
// reading requests; the others keep answering every message (no lock-step),
// and the slow one catches up once it reads again.
func TestSlowMemberDoesNotStallBroadcast(t *testing.T) {
	release := make(chan struct{})
	g := startGroup(t, 3, func(i int, m *machine) {
		if i != 0 {
			return
		}
		def := m
		m.chat = func(s grpc.BidiStreamingServer[clusterpb.EchoRequest, clusterpb.EchoItem]) error {
			<-release
			def.chat = nil
			return def.Chat(s)
		}
	}, fanout.Config{})
	chat, err := g.client.Chat(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20 // below the per-member queue size
	for r := 0; r < rounds; r++ {
		if err := chat.Send(&clusterpb.EchoRequest{Payload: []byte(fmt.Sprint(r))}); err != nil {
			t.Fatal(err)
		}
	}
	// n1 and n2 answer every round while n0 reads nothing.
	counts := map[string]int{}
	for k := 0; k < 2*rounds; k++ {
		item, err := chat.Recv()
		if err != nil {
			t.Fatal(err)
		}
		counts[item.GetMetadata().GetHostname()]++
	}
	if counts["n1"] != rounds || counts["n2"] != rounds || counts["n0"] != 0 {
		t.Fatalf("while n0 was stalled: %v", counts)
	}
	close(release)
	for k := 0; k < rounds; k++ {
		item, err := chat.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if h := item.GetMetadata().GetHostname(); h != "n0" || string(item.GetPayload()) != fmt.Sprintf("n0:%d", k) {
			t.Fatalf("after release: %s %q", h, item.GetPayload())
		}
	}
	if err := chat.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := chat.Recv(); err != io.EOF {
		t.Fatal(err)
	}
}

// TestHeadersUnionAndTrailers: every member's headers reach the client
// before the first message, and trailers are merged, for unary and
// streaming calls.
func TestHeadersUnionAndTrailers(t *testing.T) {
	g := startGroup(t, 3, func(i int, m *machine) {
		m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			_ = grpc.SetHeader(ctx, metadata.Pairs("x-node", m.name))
			_ = grpc.SetTrailer(ctx, metadata.Pairs("x-done", m.name))
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: m.name}}}, nil
		}
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			_ = s.SendHeader(metadata.Pairs("x-node", m.name))
			s.SetTrailer(metadata.Pairs("x-done", m.name))
			return s.Send(&clusterpb.LogLine{})
		}
	}, fanout.Config{})
	want := "[n0 n1 n2]"
	var header, trailer metadata.MD
	if _, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{}, grpc.Header(&header), grpc.Trailer(&trailer)); err != nil {
		t.Fatal(err)
	}
	if got := sorted(header.Get("x-node")); got != want {
		t.Errorf("unary header x-node %s, want %s", got, want)
	}
	if got := sorted(trailer.Get("x-done")); got != want {
		t.Errorf("unary trailer x-done %s, want %s", got, want)
	}
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Header()
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(h.Get("x-node")); got != want {
		t.Errorf("stream header x-node %s, want %s", got, want)
	}
	for err == nil {
		_, err = s.Recv()
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	if got := sorted(s.Trailer().Get("x-done")); got != want {
		t.Errorf("stream trailer x-done %s, want %s", got, want)
	}
}

// TestQuietMemberHeaderWait: one member sends no headers and nothing else
// until released. The others' messages still reach the client (after at
// most the header wait), and the quiet member's late headers are dropped
// and counted.
func TestQuietMemberHeaderWait(t *testing.T) {
	release := make(chan struct{})
	g := startGroup(t, 3, func(i int, m *machine) {
		m.logs = func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
			if i == 0 {
				<-release
			}
			_ = s.SendHeader(metadata.Pairs("x-node", m.name))
			return s.Send(&clusterpb.LogLine{Text: m.name})
		}
	}, fanout.Config{HeaderWait: 50 * time.Millisecond})
	s, err := g.client.Logs(callCtx(t), &clusterpb.LogsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 2; k++ {
		line, err := s.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if line.GetText() == "n0" {
			t.Fatal("the quiet member answered before it was released")
		}
	}
	close(release)
	line, err := s.Recv()
	if err != nil || line.GetText() != "n0" {
		t.Fatalf("after release: %v %v", line, err)
	}
	h, _ := s.Header()
	if got := sorted(h.Get("x-node")); got != "[n1 n2]" {
		t.Errorf("header x-node %s, want [n1 n2] (n0's came too late)", got)
	}
	if _, err := s.Recv(); err != io.EOF {
		t.Fatal(err)
	}
	if late := g.terminal.Stats().LateHeaders; late != 1 {
		t.Errorf("LateHeaders = %d, want 1", late)
	}
}

func sorted(v []string) string {
	out := append([]string(nil), v...)
	sort.Strings(out)
	return fmt.Sprint(out)
}
