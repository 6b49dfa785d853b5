package manifold

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/reflection"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/clusterpb"
	"github.com/manifold-grpc/manifold/internal/proxytest"
)

type node struct {
	clusterpb.UnimplementedMachineServer
	name string
	fail bool
}

func (n *node) Version(context.Context, *clusterpb.VersionRequest) (*clusterpb.VersionResponse, error) {
	if n.fail {
		return nil, status.Error(codes.Unavailable, "down for maintenance")
	}
	return &clusterpb.VersionResponse{Messages: []*clusterpb.Version{{Tag: "v1.2", Node: n.name}}}, nil
}

func (n *node) Logs(req *clusterpb.LogsRequest, s grpc.ServerStreamingServer[clusterpb.LogLine]) error {
	for i := int32(0); i < req.GetLines(); i++ {
		if err := s.Send(&clusterpb.LogLine{Text: fmt.Sprintf("%s %d", n.name, i)}); err != nil {
			return err
		}
	}
	return nil
}

func startNode(t *testing.T, n *node, withReflection bool) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	clusterpb.RegisterMachineServer(srv, n)
	if withReflection {
		reflection.Register(srv)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestQuickFanout runs `manifold --fanout` over three members, one failing,
// learning method kinds from reflection and then from a protoset.
func TestQuickFanout(t *testing.T) {
	protoset := writeProtoset(t)
	for _, mode := range []string{"reflection", "protoset"} {
		t.Run(mode, func(t *testing.T) {
			var specs []string
			for i, fail := range []bool{false, true, false} {
				name := fmt.Sprintf("n%d", i)
				specs = append(specs, name+"="+startNode(t, &node{name: name, fail: fail}, mode == "reflection"))
			}
			args := []string{"--fanout", strings.Join(specs, ",")}
			if mode == "protoset" {
				args = append(args, "--protoset", protoset)
			}
			addr, _ := startRun(t, args...)
			client := clusterpb.NewMachineClient(proxytest.Dial(t, addr))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			v, err := client.Version(ctx, &clusterpb.VersionRequest{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, item := range v.GetMessages() {
				md := item.GetMetadata()
				got = append(got, md.GetHostname()+":"+item.GetNode()+codes.Code(md.GetStatus().GetCode()).String())
			}
			if want := "[n0:n0OK n1:Unavailable n2:n2OK]"; fmt.Sprint(got) != want {
				t.Errorf("Version items %v, want %s", got, want)
			}
			s, err := client.Logs(ctx, &clusterpb.LogsRequest{Lines: 3})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
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
			if n != 9 {
				t.Errorf("Logs: %d lines, want 9", n)
			}
		})
	}
}

// writeProtoset writes the cluster API's descriptors, with imports, as
// protoc --include_imports --descriptor_set_out would.
func writeProtoset(t *testing.T) string {
	return proxytest.WriteProtoset(t, clusterpb.File_cluster_proto)
}
