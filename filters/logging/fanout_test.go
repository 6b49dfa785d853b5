package logging_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// machine is a fan-out member whose Version answers with its name, or
// fails with fail.
type machine struct {
	clusterpb.UnimplementedMachineServer
	name string
	fail error
}

func (m *machine) Version(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
	if m.fail != nil {
		return nil, m.fail
	}
	return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1", Node: m.name}}}, nil
}

// serveMachine starts m on loopback until the test ends.
func serveMachine(t *testing.T, m *machine) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	clusterpb.RegisterMachineServer(srv, m)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestFanout checks that a 3-member fan-out's record lists every member
// with its own code, in target order, as a list in JSON too.
func TestFanout(t *testing.T) {
	var members []fanout.Member
	var closers []server.Option
	for i := range 3 {
		m := &machine{name: fmt.Sprintf("n%d", i)}
		if i == 1 {
			m.fail = status.Error(codes.Unavailable, "disk gone")
		}
		cl, err := cluster.New(cluster.Config{Name: m.name, Target: "passthrough:///" + serveMachine(t, m), ConnectTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, fanout.Member{Name: m.name, Conn: cl.Conn()})
		closers = append(closers, server.WithCloser(cl))
	}
	term, err := fanout.New(members, fanout.Config{
		Name:  "machines",
		Kinds: methodkind.Patterns{{Match: "/manifold.cluster.v1.Machine/Version", Kind: methodkind.Unary}},
	})
	if err != nil {
		t.Fatal(err)
	}
	c := newCapture(nil)
	env := proxytest.Start(t, "127.0.0.1:1", proxytest.Config{ // the route cluster is unused
		Filters:       []pipeline.Filter{newFilter(t, logging.Config{}, c)},
		Terminal:      func(*cluster.Cluster) pipeline.Handler { return term },
		ServerOptions: closers,
	})
	client := clusterpb.NewMachineClient(env.ProxyConn)

	resp, err := client.Version(callCtx(t), &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetMessages()) != 3 {
		t.Fatalf("%d items, want 3", len(resp.GetMessages()))
	}
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "nodes", "n2,n0")
	if _, err := client.Version(ctx, &clusterpb.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	recs := c.wait(t, 2)

	for i, want := range [][]string{
		{"n0=OK", "n1=Unavailable", "n2=OK"},
		{"n2=OK", "n0=OK"},
	} {
		r := recs[i]
		if got := r.str(t, logging.KeyCode); got != "OK" {
			t.Errorf("call %d: code %q, want OK (policy all)", i, got)
		}
		if r.Level != slog.LevelInfo {
			t.Errorf("call %d: level %v, want INFO", i, r.Level)
		}
		r.absent(t, "upstream.cluster")
		ups, ok := r.Attrs[logging.KeyUpstreams].Any().(logging.Upstreams)
		if !ok {
			t.Fatalf("call %d: upstreams is %T, want logging.Upstreams", i, r.Attrs[logging.KeyUpstreams].Any())
		}
		var got []string
		for _, u := range ups {
			if u.Cluster != "machines" {
				t.Errorf("call %d: cluster %q, want machines", i, u.Cluster)
			}
			got = append(got, u.Member+"="+u.Code.String())
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("call %d: upstreams %v, want %v", i, got, want)
		}
	}

	// In JSON, the first record's upstreams are a list of objects.
	line, _, _ := strings.Cut(c.text(), "\n")
	var doc struct {
		Upstreams []struct {
			Cluster, Member, Code string
			TimeMS                string `json:"time_ms"`
		} `json:"upstreams"`
	}
	if err := json.Unmarshal([]byte(line), &doc); err != nil {
		t.Fatalf("%v: %s", err, line)
	}
	if len(doc.Upstreams) != 3 || doc.Upstreams[1].Member != "n1" || doc.Upstreams[1].Code != "Unavailable" ||
		doc.Upstreams[0].Cluster != "machines" || doc.Upstreams[0].TimeMS == "" {
		t.Errorf("JSON upstreams %+v", doc.Upstreams)
	}
}
