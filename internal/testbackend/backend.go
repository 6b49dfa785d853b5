package testbackend

import (
	"context"
	"io"
	"net"
	"testing"

	"google.golang.org/grpc"
	_ "google.golang.org/grpc/encoding/gzip" // tests send gzip-compressed calls
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Service implements the TestService with function fields. A nil field
// echoes: Unary returns the request payload, Stream echoes every message,
// ServerStream sends one message per requested response size, ClientStream
// sums the payload sizes.
type Service struct {
	testgrpc.UnimplementedTestServiceServer

	Unary        func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error)
	ClientStream func(stream testgrpc.TestService_StreamingInputCallServer) error
	ServerStream func(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error
	Bidi         func(stream testgrpc.TestService_FullDuplexCallServer) error
}

// UnaryCall implements the unary method.
func (s *Service) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if s.Unary != nil {
		return s.Unary(ctx, req)
	}
	return &testgrpc.SimpleResponse{Payload: req.GetPayload()}, nil
}

// StreamingInputCall implements the client-streaming method.
func (s *Service) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	if s.ClientStream != nil {
		return s.ClientStream(stream)
	}
	var total int32
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return stream.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: total})
		}
		if err != nil {
			return err
		}
		total += int32(len(req.GetPayload().GetBody()))
	}
}

// StreamingOutputCall implements the server-streaming method.
func (s *Service) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	if s.ServerStream != nil {
		return s.ServerStream(req, stream)
	}
	for _, p := range req.GetResponseParameters() {
		body := make([]byte, p.GetSize())
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: body}}); err != nil {
			return err
		}
	}
	return nil
}

// FullDuplexCall implements the bidirectional method.
func (s *Service) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	if s.Bidi != nil {
		return s.Bidi(stream)
	}
	for {
		req, err := stream.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
			return err
		}
	}
}

// Start serves svc on a loopback port until the test ends and returns the
// address and the server.
func Start(t testing.TB, svc testgrpc.TestServiceServer, opts ...grpc.ServerOption) (string, *grpc.Server) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	testgrpc.RegisterTestServiceServer(srv, svc)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String(), srv
}
