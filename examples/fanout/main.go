// Command fanout runs a one-to-many Manifold proxy in one process: three
// in-process "machines" (node-a, node-b, node-c) serving a Talos-style
// Machine API, a proxy whose terminal fans every call out to them, and a
// client that asks all of them, or some of them, at once.
//
// node-b is broken: its Version call fails and its log stream dies after one
// line. The proxy never fails the whole call for it; node-b's answer becomes
// an error item that the client reads like any other item.
//
//	go run ./examples/fanout
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcmetadata "google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "fanout:", err)
		os.Exit(1)
	}
}

// nodes are the machines of the example, in the order the proxy lists them,
// and the version each runs.
var nodes = []struct{ name, version string }{
	{"node-a", "v1.9.0"},
	{"node-b", "v1.9.0"},
	{"node-c", "v1.9.1"},
}

func run(out io.Writer) error {
	// The machines: one gRPC server each on a loopback port, with server
	// reflection, from which the proxy learns which methods stream.
	var members []fanout.Member
	for _, n := range nodes {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		srv := grpc.NewServer()
		clusterpb.RegisterMachineServer(srv, &machine{name: n.name, version: n.version, broken: n.name == "node-b"})
		reflection.Register(srv)
		go func() { _ = srv.Serve(lis) }()
		defer srv.Stop()
		fmt.Fprintf(out, "%s on %s\n", n.name, lis.Addr())

		// Each member is a cluster: one shared connection to the machine,
		// closed after the proxy has shut down (defers run in reverse).
		cl, err := cluster.New(cluster.Config{Name: n.name, Target: "passthrough:///" + lis.Addr().String()})
		if err != nil {
			return err
		}
		defer cl.Close()
		members = append(members, fanout.Member{Name: n.name, Conn: cl.Conn()})
	}

	// The proxy: no filters, a fan-out terminal over the three members. The
	// zero Config takes every default: all members unless the "nodes" header
	// names some, the Talos metadata layout, and method kinds learnt from
	// the members' server reflection (Kinds is nil).
	term, err := fanout.New(members, fanout.Config{})
	if err != nil {
		return err
	}
	chain, err := pipeline.Build(nil, term)
	if err != nil {
		return err
	}
	proxy, err := server.New(chain)
	if err != nil {
		return err
	}
	proxyLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	go func() { _ = proxy.Serve(proxyLis) }()
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = proxy.Shutdown(ctx)
	}()
	fmt.Fprintf(out, "manifold on %s, fanning out to %v\n\n", proxyLis.Addr(), term.Members())

	// The client talks to the proxy as if it were one machine.
	conn, err := grpc.NewClient("passthrough:///"+proxyLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := clusterpb.NewMachineClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if err := versionAll(ctx, out, client); err != nil {
		return err
	}
	if err := versionSome(ctx, out, client); err != nil {
		return err
	}
	return logsAll(ctx, out, client)
}

// versionAll asks every node for its version: one unary call in, one merged
// response out, one item per node in member order.
//
// It reads the metadata the proxy spliced into each item with the client
// helper [metadata.MessageItems], which needs nothing but the merged response
// and the layout: a client whose items carry no generated Metadata field
// can read it the same way.
func versionAll(ctx context.Context, out io.Writer, client clusterpb.MachineClient) error {
	fmt.Fprintln(out, "1. unary Version on all nodes (metadata read with metadata.MessageItems):")
	resp, err := client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		return fmt.Errorf("Version: %w", err)
	}
	items, err := metadata.MessageItems(resp, metadata.Layout{}) // the zero Layout is Talos'
	if err != nil {
		return fmt.Errorf("Version: %w", err)
	}
	// Items come in the order of resp.Messages, so the payload of item i is
	// resp.Messages[i].
	for i, item := range items {
		md := item.Metadata
		if md.Error != "" {
			st := md.Status
			fmt.Fprintf(out, "   %-7s error %s: %s\n", md.Hostname, codes.Code(st.GetCode()), st.GetMessage())
			continue
		}
		fmt.Fprintf(out, "   %-7s %s\n", md.Hostname, resp.GetMessages()[i].GetTag())
	}
	fmt.Fprintln(out)
	return nil
}

// versionSome asks two nodes, named in the "nodes" request header, in the
// order named. It reads the metadata through the generated fields.
func versionSome(ctx context.Context, out io.Writer, client clusterpb.MachineClient) error {
	fmt.Fprintln(out, "2. unary Version on nodes: node-c,node-a (metadata read from generated fields):")
	ctx = grpcmetadata.AppendToOutgoingContext(ctx, "nodes", "node-c,node-a")
	resp, err := client.Version(ctx, &clusterpb.VersionRequest{})
	if err != nil {
		return fmt.Errorf("Version on node-c,node-a: %w", err)
	}
	for _, v := range resp.GetMessages() {
		fmt.Fprintf(out, "   %-7s %s\n", v.GetMetadata().GetHostname(), v.GetTag())
	}
	fmt.Fprintln(out)
	return nil
}

// logsAll streams the logs of every node through one server stream. Each
// message is one line, with its node in the metadata's hostname; a node
// whose stream fails adds one error message and the others go on.
func logsAll(ctx context.Context, out io.Writer, client clusterpb.MachineClient) error {
	fmt.Fprintln(out, "3. server-streaming Logs on all nodes (grouped per node for a stable output):")
	stream, err := client.Logs(ctx, &clusterpb.LogsRequest{})
	if err != nil {
		return err
	}
	// The proxy keeps each node's lines in order but interleaves the nodes'
	// lines as they arrive, differently from run to run. To print the same
	// output every time, collect the lines, then print them grouped per node
	// in node order.
	perNode := make(map[string][]string)
	for {
		line, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("Logs: %w", err)
		}
		md := line.GetMetadata()
		text := line.GetText()
		if md.GetError() != "" {
			text = fmt.Sprintf("error %s: %s", codes.Code(md.GetStatus().GetCode()), md.GetStatus().GetMessage())
		}
		perNode[md.GetHostname()] = append(perNode[md.GetHostname()], text)
	}
	for _, n := range nodes {
		for _, text := range perNode[n.name] {
			fmt.Fprintf(out, "   [%s] %s\n", n.name, text)
		}
	}
	return nil
}

// machine is one node of the cluster. A broken machine fails its calls the
// way a node with a full disk would.
type machine struct {
	clusterpb.UnimplementedMachineServer
	name    string
	version string
	broken  bool
}

func (m *machine) Version(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
	if m.broken {
		return nil, status.Error(codes.Unavailable, "disk full")
	}
	// The node leaves Metadata empty: the proxy fills in the hostname.
	return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: m.version, Node: m.name}}}, nil
}

// Logs sends the node's whole log. This toy node has a fixed log and
// ignores the request's lines and follow.
func (m *machine) Logs(_ *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
	log := []string{"booted", "kubelet started", "ready"}
	for i, text := range log {
		if m.broken && i == 1 {
			return status.Error(codes.DataLoss, "log file truncated: disk full")
		}
		if err := s.Send(&clusterpb.LogLine{Text: text, Seq: int64(i)}); err != nil {
			return err
		}
	}
	return nil
}
