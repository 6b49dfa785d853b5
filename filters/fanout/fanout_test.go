package fanout_test

import (
	"context"
	"fmt"
	"io"
	"sort"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/resolver/dns"

	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func TestMain(m *testing.M) {
	// TestDNSMembers re-resolves as soon as it asks; grpc-go's default
	// waits 30s between resolutions.
	dns.SetMinResolutionInterval(time.Millisecond)
	goleak.VerifyTestMain(m)
}

// TestAllKinds runs every call kind against 1, 3 and 16 members and checks
// that each member's answer is there, tagged with its name, in member order.
func TestAllKinds(t *testing.T) {
	for _, n := range []int{1, 3, 16} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			g := startGroup(t, n, nil, fanout.Config{})
			ctx := callCtx(t)

			// Unary.
			v, err := g.client.Version(ctx, &clusterpb.VersionRequest{})
			if err != nil {
				t.Fatal(err)
			}
			if len(v.GetMessages()) != n {
				t.Fatalf("Version: %d items, want %d", len(v.GetMessages()), n)
			}
			for i, item := range v.GetMessages() {
				if item.GetMetadata().GetHostname() != nodeName(i) || item.GetNode() != nodeName(i) || item.GetTag() != "v1" {
					t.Errorf("Version item %d = %v, want node %s", i, item, nodeName(i))
				}
				if item.GetMetadata().GetError() != "" || item.GetMetadata().GetStatus() != nil {
					t.Errorf("healthy item %d carries an error: %v", i, item.GetMetadata())
				}
			}

			// Client streaming.
			up, err := g.client.Upload(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"a", "bb", "ccc"} {
				if err := up.Send(&clusterpb.EchoRequest{Payload: []byte(p)}); err != nil {
					t.Fatal(err)
				}
			}
			ur, err := up.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if len(ur.GetMessages()) != n {
				t.Fatalf("Upload: %d items, want %d", len(ur.GetMessages()), n)
			}
			for i, item := range ur.GetMessages() {
				if string(item.GetPayload()) != "abbccc" || item.GetMetadata().GetHostname() != nodeName(i) {
					t.Errorf("Upload item %d = %v", i, item)
				}
			}

			// Server streaming: every line of every member, each member's in
			// its order.
			const lines = 5
			ls, err := g.client.Logs(ctx, &clusterpb.LogsRequest{Lines: lines})
			if err != nil {
				t.Fatal(err)
			}
			next := map[string]int64{}
			total := 0
			for {
				line, err := ls.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				host := line.GetMetadata().GetHostname()
				if want := fmt.Sprintf("%s line %d", host, next[host]); line.GetText() != want || line.GetSeq() != next[host] {
					t.Errorf("Logs: got %q seq %d from %s, want %q", line.GetText(), line.GetSeq(), host, want)
				}
				next[host]++
				total++
			}
			if total != n*lines || len(next) != n {
				t.Errorf("Logs: %d lines from %d members, want %d from %d", total, len(next), n*lines, n)
			}

			// Bidi: every message reaches every member, every echo comes back.
			chat, err := g.client.Chat(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for round := 0; round < 3; round++ {
				msg := fmt.Sprintf("m%d", round)
				if err := chat.Send(&clusterpb.EchoRequest{Payload: []byte(msg)}); err != nil {
					t.Fatal(err)
				}
				var got []string
				for i := 0; i < n; i++ {
					item, err := chat.Recv()
					if err != nil {
						t.Fatal(err)
					}
					if want := item.GetMetadata().GetHostname() + ":" + msg; string(item.GetPayload()) != want {
						t.Errorf("Chat echo %q, want %q", item.GetPayload(), want)
					}
					got = append(got, item.GetMetadata().GetHostname())
				}
				sort.Strings(got)
				want := make([]string, n)
				for i := range want {
					want[i] = nodeName(i)
				}
				sort.Strings(want)
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("Chat round %d answered by %v, want %v", round, got, want)
				}
			}
			if err := chat.CloseSend(); err != nil {
				t.Fatal(err)
			}
			if _, err := chat.Recv(); err != io.EOF {
				t.Fatalf("Chat end: %v", err)
			}
		})
	}
}

// TestTargetOrderNotCompletionOrder: members answer in reverse order; the
// merged answer still lists them in target order.
func TestTargetOrderNotCompletionOrder(t *testing.T) {
	const n = 4
	g := startGroup(t, n, func(i int, m *machine) {
		m.version = func(ctx context.Context, _ *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
			time.Sleep(time.Duration(n-i) * 30 * time.Millisecond)
			return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Node: m.name}, {Node: m.name + "-b"}}}, nil
		}
	}, fanout.Config{})
	v, err := g.client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, item := range v.GetMessages() {
		got = append(got, item.GetMetadata().GetHostname()+"/"+item.GetNode())
	}
	want := "[n0/n0 n0/n0-b n1/n1 n1/n1-b n2/n2 n2/n2-b n3/n3 n3/n3-b]"
	if fmt.Sprint(got) != want {
		t.Errorf("items %v, want %s", got, want)
	}
}
