// Command quickstart runs Manifold end to end in one process: an echo
// backend, the proxy with a chain of three filters, and a client that makes
// one call of each kind through the proxy and prints what the filters saw.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/echopb"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/server"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

// audit is a filter written as a type: it prints each call as it starts
// and as it ends, with the message counts that the counter filter stored
// in the call's state.
type audit struct{ out io.Writer }

func (a *audit) Name() string { return "audit" }

func (a *audit) OnRequestHeaders(_ context.Context, call *pipeline.Call) error {
	fmt.Fprintf(a.out, "  [audit]   → %s\n", shortMethod(call.Method))
	return nil
}

func (a *audit) OnResponseEnd(_ context.Context, call *pipeline.Call, end *pipeline.End) {
	c, _ := counts.Get(call)
	fmt.Fprintf(a.out, "  [audit]   ← %s %s (%d request and %d response messages, %d bytes in, %d bytes out)\n",
		shortMethod(call.Method), end.Status.Code(), c.reqs.Load(), c.resps.Load(), c.reqBytes.Load(), c.respBytes.Load())
}

var (
	_ pipeline.RequestHeadersHook = (*audit)(nil)
	_ pipeline.ResponseEndHook    = (*audit)(nil)
)

// messageCounts is the counter filter's per-call state. Request and
// response hooks run on different goroutines, hence the atomics.
type messageCounts struct {
	reqs, resps, reqBytes, respBytes atomic.Int64
}

var counts = pipeline.NewKey[*messageCounts]("quickstart.counts")

// counter is a filter built from function fields: it sees every raw frame,
// never decoding it.
var counter = &pipeline.Funcs{
	FilterName: "counter",
	RequestHeaders: func(_ context.Context, call *pipeline.Call) error {
		counts.Set(call, &messageCounts{})
		return nil
	},
	RequestMessage: func(_ context.Context, call *pipeline.Call, f *rawcodec.Frame) error {
		c, _ := counts.Get(call)
		c.reqs.Add(1)
		c.reqBytes.Add(int64(f.Len()))
		return nil
	},
	ResponseMessage: func(_ context.Context, call *pipeline.Call, f *rawcodec.Frame) error {
		c, _ := counts.Get(call)
		c.resps.Add(1)
		c.respBytes.Add(int64(f.Len()))
		return nil
	},
}

// tenant is a header-only filter in a few lines: it tags every call for the
// upstream.
var tenant = pipeline.RequestHeadersFunc("tenant", func(_ context.Context, call *pipeline.Call) error {
	call.Header.Set("x-tenant", "acme")
	return nil
})

func run(out io.Writer) error {
	// The backend: an echo service on a loopback port.
	backendLis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	backend := grpc.NewServer()
	echopb.RegisterEchoServer(backend, &echoService{})
	go func() { _ = backend.Serve(backendLis) }()
	defer backend.Stop()

	// The proxy: audit → counter → tenant → route to the backend.
	upstream, err := cluster.New(cluster.Config{Name: "echo", Target: "passthrough:///" + backendLis.Addr().String()})
	if err != nil {
		return err
	}
	chain, err := pipeline.Build([]pipeline.Filter{&audit{out: out}, counter, tenant}, route.New(upstream))
	if err != nil {
		return err
	}
	proxy, err := server.New(chain, server.WithCloser(upstream))
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
	fmt.Fprintf(out, "backend on %s, manifold on %s\n\n", backendLis.Addr(), proxyLis.Addr())

	// The client talks to the proxy as if it were the backend.
	conn, err := grpc.NewClient("passthrough:///"+proxyLis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := echopb.NewEchoClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	fmt.Fprintln(out, "unary Say:")
	resp, err := client.Say(ctx, &echopb.SayRequest{Text: "hello"})
	if err != nil {
		return fmt.Errorf("Say: %w", err)
	}
	fmt.Fprintf(out, "  [client]  got %q from %s\n\n", resp.GetText(), resp.GetServedBy())

	fmt.Fprintln(out, "client-streaming Collect:")
	cs, err := client.Collect(ctx)
	if err != nil {
		return err
	}
	for _, w := range []string{"one", "two", "three"} {
		if err := cs.Send(&echopb.SayRequest{Text: w}); err != nil {
			return err
		}
	}
	collected, err := cs.CloseAndRecv()
	if err != nil {
		return fmt.Errorf("Collect: %w", err)
	}
	fmt.Fprintf(out, "  [client]  got %q from %s\n\n", collected.GetTexts(), collected.GetServedBy())

	fmt.Fprintln(out, "server-streaming Repeat:")
	rs, err := client.Repeat(ctx, &echopb.RepeatRequest{Text: "again", Count: 3})
	if err != nil {
		return err
	}
	var repeated []string
	for {
		m, err := rs.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("Repeat: %w", err)
		}
		repeated = append(repeated, m.GetText())
	}
	fmt.Fprintf(out, "  [client]  got %q\n\n", repeated)

	fmt.Fprintln(out, "bidi-streaming Chat:")
	chat, err := client.Chat(ctx)
	if err != nil {
		return err
	}
	var replies []string
	for _, w := range []string{"ping", "pong"} {
		if err := chat.Send(&echopb.SayRequest{Text: w}); err != nil {
			return err
		}
		m, err := chat.Recv()
		if err != nil {
			return fmt.Errorf("Chat: %w", err)
		}
		replies = append(replies, m.GetText())
	}
	if err := chat.CloseSend(); err != nil {
		return err
	}
	if _, err := chat.Recv(); err != io.EOF {
		return fmt.Errorf("Chat end: %v", err)
	}
	fmt.Fprintf(out, "  [client]  got %q\n", replies)
	return nil
}

// echoService is the backend. It reports the tenant header that the proxy's
// tenant filter added.
type echoService struct {
	echopb.UnimplementedEchoServer
}

func servedBy(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	return "backend (tenant " + strings.Join(md.Get("x-tenant"), ",") + ")"
}

func (echoService) Say(ctx context.Context, req *echopb.SayRequest) (*echopb.SayResponse, error) {
	return &echopb.SayResponse{Text: req.GetText(), ServedBy: servedBy(ctx)}, nil
}

func (echoService) Collect(s grpc.ClientStreamingServer[echopb.SayRequest, echopb.CollectResponse]) error {
	var texts []string
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&echopb.CollectResponse{Texts: texts, ServedBy: servedBy(s.Context())})
		}
		if err != nil {
			return err
		}
		texts = append(texts, m.GetText())
	}
}

func (echoService) Repeat(req *echopb.RepeatRequest, s grpc.ServerStreamingServer[echopb.SayResponse]) error {
	for i := int32(0); i < req.GetCount(); i++ {
		if err := s.Send(&echopb.SayResponse{Text: fmt.Sprintf("%s #%d", req.GetText(), i+1)}); err != nil {
			return err
		}
	}
	return nil
}

func (echoService) Chat(s grpc.BidiStreamingServer[echopb.SayRequest, echopb.SayResponse]) error {
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if err := s.Send(&echopb.SayResponse{Text: m.GetText() + "!"}); err != nil {
			return err
		}
	}
}

func shortMethod(m string) string {
	return m[strings.LastIndexByte(m[:strings.LastIndexByte(m, '/')], '.')+1:]
}
