// Command mwitkow is the reference column of the load benchmark:
// github.com/mwitkow/grpc-proxy, set up as its README shows (a transparent
// unknown-service handler, its raw-bytes codec on both sides, a director
// returning one shared ClientConn and forwarding the incoming metadata).
//
// It prints "listening ADDR" to standard output once it serves and runs
// until SIGTERM, SIGINT or the end of its standard input.
//
//	go run ./mwitkow -upstream 127.0.0.1:9090
package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/mwitkow/grpc-proxy/proxy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/bench/internal/serve"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "upstream host:port")
	flag.Parse()
	if *upstream == "" {
		fail(fmt.Errorf("-upstream is required"))
	}

	// grpc-proxy's codec is a grpc.Codec, not an encoding.Codec:
	// WithCodec is how its README dials.
	//lint:ignore SA1019 grpc-proxy's documented client setup.
	withCodec := grpc.WithCodec(proxy.Codec())
	conn, err := grpc.NewClient("passthrough:///"+*upstream, grpc.WithTransportCredentials(insecure.NewCredentials()), withCodec)
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	director := func(ctx context.Context, _ string) (context.Context, *grpc.ClientConn, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		return metadata.NewOutgoingContext(ctx, md.Copy()), conn, nil
	}
	//lint:ignore SA1019 as above: grpc-proxy's documented server setup.
	srv := grpc.NewServer(grpc.CustomCodec(proxy.Codec()),
		grpc.UnknownServiceHandler(proxy.TransparentHandler(director)))
	if _, err := serve.Listen(srv, *listen); err != nil {
		fail(err)
	}
	serve.Wait(srv)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "mwitkow:", err)
	os.Exit(1)
}
