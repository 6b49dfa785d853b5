package manifold

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	_ "github.com/manifold-grpc/manifold/examples/config/stamp"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/echopb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
)

type echoBackend struct {
	echopb.UnimplementedEchoServer
}

func (echoBackend) Say(ctx context.Context, req *echopb.SayRequest) (*echopb.SayResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	return &echopb.SayResponse{Text: req.GetText(), ServedBy: strings.Join(md.Get("x-user"), ",")}, nil
}

// TestExampleConfigOneToOne runs examples/config/one-to-one.yaml.
func TestExampleConfigOneToOne(t *testing.T) {
	backend := startEcho(t)
	secret := []byte("an example secret of at least thirty-two bytes")
	secretFile := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secretFile, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ECHO_BACKEND", backend)
	t.Setenv("AUTH_SECRET_FILE", secretFile)
	t.Setenv("MANIFOLD_LISTEN", "127.0.0.1:0")
	t.Setenv("MANIFOLD_ADMIN", "127.0.0.1:0")
	addr, logs := startRun(t, "--config", "examples/config/one-to-one.yaml")
	client := echopb.NewEchoClient(proxytest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	var header metadata.MD
	resp, err := client.Say(ctx, &echopb.SayRequest{Text: "anonymous"}, grpc.Header(&header))
	if err != nil || resp.GetText() != "anonymous" || header.Get("x-served-by")[0] != "manifold" {
		t.Fatalf("Say without a token: %v %v %v", resp, err, header)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "demo-issuer", "aud": "echo", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	authed := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	if resp, err := client.Say(authed, &echopb.SayRequest{Text: "hi"}); err != nil || resp.GetServedBy() != "alice" {
		t.Fatalf("Say with a token: %v %v", resp, err)
	}
	if _, err := client.Repeat(ctx, &echopb.RepeatRequest{Text: "x", Count: 1}); err != nil {
		t.Fatal(err)
	}
	rs, _ := client.Repeat(ctx, &echopb.RepeatRequest{Text: "x", Count: 1})
	if _, err := rs.Recv(); status.Code(err) != codes.Unauthenticated {
		t.Errorf("Repeat without a token: %v, want Unauthenticated", err)
	}
	if !strings.Contains(logs.String(), "grpc.code=Unauthenticated") {
		t.Errorf("no access log of the refused call:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the token was logged")
	}
}

// TestExampleConfigFanout runs examples/config/fanout.yaml.
func TestExampleConfigFanout(t *testing.T) {
	for _, n := range []string{"A", "B", "C"} {
		t.Setenv("NODE_"+n, startNode(t, &node{name: "node-" + strings.ToLower(n)}, false))
	}
	t.Setenv("MANIFOLD_LISTEN", "127.0.0.1:0")
	t.Setenv("MANIFOLD_ADMIN", "127.0.0.1:0")
	addr, _ := startRun(t, "--config", "examples/config/fanout.yaml")
	client := clusterpb.NewMachineClient(proxytest.Dial(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, item := range v.GetMessages() {
		got = append(got, item.GetMetadata().GetHostname())
	}
	if fmt.Sprint(got) != "[node-a node-b node-c]" {
		t.Errorf("Version from %v", got)
	}
	s, err := client.Logs(ctx, &clusterpb.LogsRequest{Lines: 2})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := s.Recv(); err != nil {
			break
		}
		n++
	}
	if n != 6 {
		t.Errorf("Logs: %d lines, want 6", n)
	}
}

func startEcho(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	echopb.RegisterEchoServer(srv, echoBackend{})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestExampleConfigCustomFilter runs examples/config/custom.yaml, which names
// a filter that a user's binary registers (examples/config/stamp).
func TestExampleConfigCustomFilter(t *testing.T) {
	t.Setenv("BACKEND", startEcho(t))
	t.Setenv("MANIFOLD_LISTEN", "127.0.0.1:0")
	t.Setenv("HOSTNAME", "proxy-7")
	addr, _ := startRun(t, "--config", "examples/config/custom.yaml")
	client := echopb.NewEchoClient(proxytest.Dial(t, addr))
	var header metadata.MD
	if _, err := client.Say(context.Background(), &echopb.SayRequest{Text: "x"}, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-proxied-by"); len(got) != 1 || got[0] != "proxy-7" {
		t.Errorf("x-proxied-by = %q", got)
	}
}
