package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"

	"google.golang.org/grpc"
)

// Listen serves srv on addr in the background and prints "listening ADDR"
// to standard output, the line the load and soak drivers wait for. It
// returns the address it got.
func Listen(srv *grpc.Server, addr string) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	go func() { _ = srv.Serve(lis) }()
	fmt.Printf("listening %s\n", lis.Addr())
	return lis.Addr(), nil
}

// Wait blocks until SIGTERM, SIGINT or the end of standard input (a
// driver stops its children by closing it, so none outlives a driver that
// dies), then stops servers.
func Wait(servers ...*grpc.Server) {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()
	<-ctx.Done()
	for _, s := range servers {
		s.Stop()
	}
}
