// Command backend is the load benchmark's upstream: grpc-go's
// BenchmarkService (package google.golang.org/grpc/interop/grpc_testing) on
// one or more loopback ports, so that one process can stand in for the three
// members of a fan-out group.
//
// It serves UnaryCall (one response of the requested size), StreamingCall
// (ping-pong: one response per request, as grpc-go's benchmark server does)
// and StreamingFromServer (a fixed number of responses of the requested
// size, then OK). Once every port listens it prints one line per port,
// "listening ADDR", to standard output; it runs until SIGTERM, SIGINT or the
// end of its standard input.
//
// The driver in ../load builds and starts it; it is not meant to be run by
// hand, but can be:
//
//	go run ./backend -ports 3
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/bench/internal/serve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address of the first port; further ports take any free port on the same host")
	ports := flag.Int("ports", 1, "how many ports (members) to serve the service on")
	streamMsgs := flag.Int("stream-msgs", 10, "responses StreamingFromServer sends per call")
	flag.Parse()

	svc := &service{streamMsgs: *streamMsgs}
	var servers []*grpc.Server
	for i := range *ports {
		addr := *listen
		if i > 0 {
			host, _, err := net.SplitHostPort(*listen)
			if err != nil {
				fail(err)
			}
			addr = net.JoinHostPort(host, "0")
		}
		srv := grpc.NewServer()
		testpb.RegisterBenchmarkServiceServer(srv, svc)
		servers = append(servers, srv)
		if _, err := serve.Listen(srv, addr); err != nil {
			fail(err)
		}
	}
	serve.Wait(servers...)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "backend:", err)
	os.Exit(1)
}

// service is the BenchmarkService. It is stateless and safe for concurrent
// calls.
type service struct {
	testpb.UnimplementedBenchmarkServiceServer
	streamMsgs int
}

func payload(size int32) *testpb.Payload {
	return &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: make([]byte, size)}
}

// UnaryCall answers with a payload of the requested size.
func (s *service) UnaryCall(_ context.Context, in *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	return &testpb.SimpleResponse{Payload: payload(in.GetResponseSize())}, nil
}

// StreamingCall answers each request with one response of the requested
// size until the client half-closes.
func (s *service) StreamingCall(stream testpb.BenchmarkService_StreamingCallServer) error {
	in := new(testpb.SimpleRequest)
	resp := &testpb.SimpleResponse{}
	for {
		if err := stream.RecvMsg(in); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if resp.Payload == nil || int32(len(resp.Payload.Body)) != in.GetResponseSize() {
			resp.Payload = payload(in.GetResponseSize())
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}

// StreamingFromServer sends streamMsgs responses of the requested size.
func (s *service) StreamingFromServer(in *testpb.SimpleRequest, stream testpb.BenchmarkService_StreamingFromServerServer) error {
	resp := &testpb.SimpleResponse{Payload: payload(in.GetResponseSize())}
	for range s.streamMsgs {
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
	return nil
}

var _ testpb.BenchmarkServiceServer = (*service)(nil)
