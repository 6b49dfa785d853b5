package manifold

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
)

// TestMembersFromFile: a config-mode fan-out group takes its members from a
// watched file. Members added to the file are asked by new calls, the
// nodes header selects them by the file's names, a bad rewrite keeps the
// last good set, and a file without members answers UNAVAILABLE naming the
// resolver.
func TestMembersFromFile(t *testing.T) {
	a := startNode(t, &node{name: "machine-a"}, true)
	b := startNode(t, &node{name: "machine-b"}, true)
	members := writeFile(t, "nodes", "a="+a+"\n")
	rewrite := func(content string) {
		t.Helper()
		// Write a new file and rename it over the old one, as a config
		// management tool (or a Kubernetes volume) does.
		tmp := members + ".tmp"
		if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, members); err != nil {
			t.Fatal(err)
		}
	}
	file := writeFile(t, "m.yaml", fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
fanout:
  - name: nodes
    members_from: "file://%s?interval=10ms"
    member: {connect_timeout: 2s}
routes: [{name: all, fanout: nodes}]
`, members))
	addr, logs := startRun(t, "--config", file)
	client := clusterpb.NewMachineClient(proxytest.Dial(t, addr))

	version := func(nodes string) ([]string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if nodes != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "nodes", nodes)
		}
		v, err := client.Version(ctx, &clusterpb.VersionRequest{})
		var got []string
		for _, item := range v.GetMessages() {
			got = append(got, item.GetMetadata().GetHostname()+"="+item.GetNode())
		}
		return got, err
	}
	waitFor := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got, err := version("")
			if err == nil && fmt.Sprint(got) == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("members: %v %v, want %s\nlogs:\n%s", got, err, want, logs.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	waitFor("[a=machine-a]")
	rewrite("# two machines now\na=" + a + "\nb=" + b + "\n")
	waitFor("[a=machine-a b=machine-b]")
	if got, err := version("b"); err != nil || fmt.Sprint(got) != "[b=machine-b]" {
		t.Errorf("nodes: b → %v %v", got, err)
	}
	if _, err := version(b); status.Code(err) != codes.InvalidArgument {
		t.Errorf("nodes naming an address instead of a member: %v, want INVALID_ARGUMENT", err)
	}

	// A bad rewrite is logged and changes nothing.
	rewrite("a=" + a + "\nthis is not a member line\n")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "line 2") {
		if time.Now().After(deadline) {
			t.Fatalf("bad member file not reported:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got, err := version(""); err != nil || fmt.Sprint(got) != "[a=machine-a b=machine-b]" {
		t.Errorf("after a bad rewrite: %v %v", got, err)
	}

	// No members: UNAVAILABLE, saying where members come from.
	rewrite("# nobody\n")
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, err := version("")
		if status.Code(err) == codes.Unavailable && strings.Contains(err.Error(), "no members") && strings.Contains(err.Error(), members) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("empty member file: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMembersFromValidation: members_from mistakes fail at load time,
// with the file, line and field.
func TestMembersFromValidation(t *testing.T) {
	bad := writeFile(t, "nodes", "a=127.0.0.1:1\nnot a member\n")
	for _, tc := range []struct{ group, want string }{
		{`{name: g, members_from: "dns:///x:1", members: [{name: a, target: "127.0.0.1:1"}]}`, "m.yaml:3:29: fanout[0].members_from: exclusive with members"},
		{`{name: g, members_from: "nodes.example:50000"}`, `m.yaml:3:29: fanout[0].members_from: "nodes.example:50000": no resolver for scheme`},
		{`{name: g, members_from: "file://` + bad + `"}`, "fanout[0].members_from: file " + bad + ": line 2"},
		{`{name: g}`, "fanout[0].members: at least one member is required, or members_from"},
		{`{name: g, members_from: "dns:///x:1", refresh: -1s}`, "fanout[0].refresh: must not be negative"},
		{`{name: g, members_from: "dns:///x:1", member: {keepalive: {time: 1s}}}`, "fanout[0].member.keepalive.time: must be at least 10s"},
	} {
		file := writeFile(t, "m.yaml", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - "+tc.group+"\nroutes: [{name: r, fanout: g}]\n")
		var out strings.Builder
		if code := Run(context.Background(), []string{"validate", "--config", file}, &out); code == 0 || !strings.Contains(out.String(), tc.want) {
			t.Errorf("%s: exit %d, output lacks %q:\n%s", tc.group, code, tc.want, out.String())
		}
	}
}
