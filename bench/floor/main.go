// Command floor is the leanest pass-through gRPC proxy grpc-go allows: an
// unknown-service handler, a zero-copy pass-through codec, one shared
// ClientConn to the upstream, no filters and nothing else. The load
// benchmark uses it as the floor that Manifold's own overhead is measured
// against: what grpc-go itself costs a proxy.
//
// It prints "listening ADDR" to standard output once it serves and runs
// until SIGTERM, SIGINT or the end of its standard input.
//
//	go run ./floor -upstream 127.0.0.1:9090
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/bench/internal/serve"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to serve on")
	upstream := flag.String("upstream", "", "upstream host:port")
	flag.Parse()
	if *upstream == "" {
		fail(fmt.Errorf("-upstream is required"))
	}

	conn, err := grpc.NewClient("passthrough:///"+*upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	p := &proxy{conn: conn}
	srv := grpc.NewServer(grpc.ForceServerCodecV2(rawcodec.Codec{}), grpc.UnknownServiceHandler(p.handle))
	if _, err := serve.Listen(srv, *listen); err != nil {
		fail(err)
	}
	serve.Wait(srv)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "floor:", err)
	os.Exit(1)
}

// proxy forwards every call, as raw frames, to conn.
type proxy struct {
	conn *grpc.ClientConn
}

var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// handle proxies one call: request frames on a second goroutine, response
// headers, frames and trailers on this one. The request goroutine ends when
// the client half-closes or the call ends (grpc-go ends the server stream
// when the handler returns). Frames move by reference, as
// [rawcodec.Frame] documents: a successful SendMsg takes the frame's bytes.
func (p *proxy) handle(_ any, ss grpc.ServerStream) error {
	method, ok := grpc.MethodFromServerStream(ss)
	if !ok {
		return status.Error(codes.Internal, "floor: no method")
	}
	md, _ := metadata.FromIncomingContext(ss.Context())
	ctx, cancel := context.WithCancel(metadata.NewOutgoingContext(ss.Context(), md))
	defer cancel()
	cs, err := p.conn.NewStream(ctx, streamDesc, method, grpc.ForceCodecV2(rawcodec.Codec{}))
	if err != nil {
		return err
	}

	go func() {
		var f rawcodec.Frame
		for {
			if err := ss.RecvMsg(&f); err != nil {
				if err == io.EOF {
					_ = cs.CloseSend()
				} else {
					cancel() // the upstream call ends too
				}
				return
			}
			if err := cs.SendMsg(&f); err != nil {
				return // the upstream's status comes from RecvMsg
			}
		}
	}()

	var f rawcodec.Frame
	for first := true; ; first = false {
		err := cs.RecvMsg(&f)
		if first {
			if h, herr := cs.Header(); herr == nil && len(h) > 0 {
				if err := ss.SendHeader(h); err != nil {
					f.Free()
					return err
				}
			}
		}
		if err != nil {
			ss.SetTrailer(cs.Trailer())
			if err == io.EOF {
				return nil
			}
			return err
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}
