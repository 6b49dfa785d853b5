package server_test

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// TestMalformedMethods: method names that are not /service/method, or that
// carry path tricks, never reach the chain.
func TestMalformedMethods(t *testing.T) {
	var served atomic.Int32
	srv, err := server.New(pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error {
		served.Add(1)
		return nil
	}))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	conn := proxytest.Dial(t, lis.Addr().String())
	call := func(method string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, method, grpc.ForceCodecV2(rawcodec.Codec{}))
		if err != nil {
			return err
		}
		if err := s.CloseSend(); err != nil {
			return err
		}
		var f rawcodec.Frame
		err = s.RecvMsg(&f)
		f.Free()
		return err
	}
	for _, m := range []string{
		"/pkg.Public/../pkg.Admin/Delete",
		"/pkg.Svc/a/b",
		"/../Delete",
		"/pkg.Svc/..",
		"/pkg.Svc/%2e%2e",
		"/pkg.Svc/M\\x",
		"//Method",
		"/pkg.Svc/",
	} {
		if err := call(m); status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), "malformed method") {
			t.Errorf("%q: %v, want Unimplemented malformed method", m, err)
		}
	}
	if n := served.Load(); n != 0 {
		t.Errorf("%d malformed calls reached the chain", n)
	}
	if err := call("/pkg.v1.Svc/Get_Thing"); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Errorf("a good method failed: %v", err)
	}
	if served.Load() != 1 {
		t.Error("a good method did not reach the chain")
	}
}
