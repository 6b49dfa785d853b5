package fanout_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

// kinds tells the test service's methods apart, as a config file would.
var kinds = methodkind.Patterns{
	{Match: "/manifold.cluster.v1.Machine/Version", Kind: methodkind.Unary},
	{Match: "/manifold.cluster.v1.Machine/Upload", Kind: methodkind.ClientStreaming},
	{Match: "/manifold.cluster.v1.Machine/Logs", Kind: methodkind.ServerStreaming},
	{Match: "/manifold.cluster.v1.Machine/Chat", Kind: methodkind.BidiStreaming},
}

// machine is one member: a Machine service with overridable methods. Unset
// methods answer as a healthy node named name.
type machine struct {
	clusterpb.UnimplementedMachineServer
	name    string
	version func(ctx context.Context, req *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error)
	logs    func(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error
	upload  func(s grpc.ClientStreamingServer[clusterpb.EchoRequest, clusterpb.EchoResponse]) error
	chat    func(s grpc.BidiStreamingServer[clusterpb.EchoRequest, clusterpb.EchoItem]) error
}

func (m *machine) Version(ctx context.Context, req *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
	if m.version != nil {
		return m.version(ctx, req)
	}
	return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1", Node: m.name}}}, nil
}

func (m *machine) Logs(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
	if m.logs != nil {
		return m.logs(req, s)
	}
	for i := int32(0); i < req.GetLines(); i++ {
		if err := s.Send(&clusterpb.LogLine{Text: fmt.Sprintf("%s line %d", m.name, i), Seq: int64(i)}); err != nil {
			return err
		}
	}
	return nil
}

func (m *machine) Upload(s grpc.ClientStreamingServer[clusterpb.EchoRequest, clusterpb.EchoResponse]) error {
	if m.upload != nil {
		return m.upload(s)
	}
	var all []byte
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&clusterpb.EchoResponse{Messages: []*clusterpb.EchoItem{{Payload: all}}})
		}
		if err != nil {
			return err
		}
		all = append(all, req.GetPayload()...)
	}
}

func (m *machine) Chat(s grpc.BidiStreamingServer[clusterpb.EchoRequest, clusterpb.EchoItem]) error {
	if m.chat != nil {
		return m.chat(s)
	}
	for {
		req, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&clusterpb.EchoItem{Payload: append([]byte(m.name+":"), req.GetPayload()...)}); err != nil {
			return err
		}
	}
}

// serveMachine starts m on loopback until the test ends.
func serveMachine(t testing.TB, m clusterpb.MachineServer, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	clusterpb.RegisterMachineServer(srv, m)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// group is a running fan-out proxy in front of its members.
type group struct {
	terminal *fanout.Terminal
	conn     *grpc.ClientConn
	client   clusterpb.MachineClient
}

// nodeName is the name of member i.
func nodeName(i int) string { return fmt.Sprintf("n%d", i) }

// startGroup starts n members (machines from mk, or healthy ones when mk
// returns nil) and a fan-out proxy over them.
func startGroup(t testing.TB, n int, mk func(i int, m *machine), cfg fanout.Config) *group {
	t.Helper()
	addrs := make([]string, n)
	for i := range addrs {
		m := &machine{name: nodeName(i)}
		if mk != nil {
			mk(i, m)
		}
		addrs[i] = serveMachine(t, m)
	}
	return startProxy(t, addrs, cfg)
}

// startProxy fans out to members at addrs, named n0, n1, …, knowing the
// method kinds from config patterns unless cfg says otherwise.
func startProxy(t testing.TB, addrs []string, cfg fanout.Config) *group {
	t.Helper()
	if cfg.Kinds == nil {
		cfg.Kinds = kinds
	}
	return startProxyWith(t, addrs, cfg)
}

// startProxyWith fans out to members at addrs with cfg as given.
func startProxyWith(t testing.TB, addrs []string, cfg fanout.Config) *group {
	t.Helper()
	var members []fanout.Member
	var closers []server.Option
	for i, a := range addrs {
		cl, err := cluster.New(cluster.Config{Name: nodeName(i), Target: "passthrough:///" + a, ConnectTimeout: 300 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		members = append(members, fanout.Member{Name: nodeName(i), Conn: cl.Conn()})
		closers = append(closers, server.WithCloser(cl))
	}
	term, err := fanout.New(members, cfg)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := pipeline.Build(nil, term)
	if err != nil {
		t.Fatal(err)
	}
	proxyAddr := proxytest.Serve(t, chain, closers...)
	conn := proxytest.Dial(t, proxyAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	return &group{terminal: term, conn: conn, client: clusterpb.NewMachineClient(conn)}
}

func callCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}
