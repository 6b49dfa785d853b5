package logging_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	grpclogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/pipeline"
)

// exampleStream stands in for the client's stream: its context carries the
// message counters, as server.Server's does.
type exampleStream struct {
	pipeline.ServerStream
	ctx context.Context
}

func (s exampleStream) Context() context.Context { return s.ctx }

// serveExample runs one call through a chain whose only filter is access,
// in front of a stand-in for a route terminal whose upstream answers
// NotFound. The client sends a token, which is never logged.
func serveExample(access pipeline.Filter) {
	terminal := pipeline.HandlerFunc(func(call *pipeline.Call, stream pipeline.ServerStream) error {
		c := pipeline.CountersFromContext(stream.Context())
		c.RequestMessages.Add(1)
		c.RequestBytes.Add(4)
		pipeline.RecordUpstream(call, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.NotFound})
		return status.Error(codes.NotFound, "user 42 not found")
	})
	chain, err := pipeline.Build([]pipeline.Filter{access}, terminal)
	if err != nil {
		fmt.Println(err)
		return
	}
	call := &pipeline.Call{
		Method:    "/users.v1.Users/Get",
		Authority: "api.example.com",
		Peer:      &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 51234},
		Inbound:   metadata.Pairs("x-request-id", "r-42", "authorization", "Bearer t0ken", "user-agent", "grpc-go/1.85.0"),
		Header:    metadata.MD{},
	}
	ctx := pipeline.ContextWithCounters(context.Background(), new(pipeline.Counters))
	err = chain.Serve(call, exampleStream{ctx: ctx})
	fmt.Println("status:", status.Code(err))
}

// An access log to a slog text handler; the handler drops the time and the
// durations, which change from run to run.
func Example() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || strings.HasSuffix(a.Key, "time_ms") {
				return slog.Attr{}
			}
			return a
		},
	}))
	access, err := logging.New(logging.Config{Headers: []string{"x-request-id"}}, logging.WithLogger(log))
	if err != nil {
		fmt.Println(err)
		return
	}
	serveExample(access)
	// Output:
	// level=INFO msg="finished call" grpc.full_method=/users.v1.Users/Get grpc.service=users.v1.Users grpc.method=Get grpc.code=NotFound grpc.error="user 42 not found" peer.address=10.0.0.7:51234 grpc.authority=api.example.com grpc.user_agent=grpc-go/1.85.0 grpc.request.messages=1 grpc.request.bytes=4 grpc.response.messages=0 grpc.response.bytes=0 upstream.cluster=users upstream.code=NotFound grpc.request.metadata.x-request-id=r-42
	// status: NotFound
}

// A team that already logs through go-grpc-middleware keeps its logger: the
// record arrives as flat key/value fields.
func ExampleNewWithLogger() {
	sink := grpclogging.LoggerFunc(func(_ context.Context, level grpclogging.Level, msg string, fields ...any) {
		fmt.Println(slog.Level(level), msg)
		for i := 0; i+1 < len(fields); i += 2 {
			if k := fields[i].(string); !strings.HasSuffix(k, "time_ms") {
				fmt.Printf("  %s=%v\n", k, fields[i+1])
			}
		}
	})
	access, err := logging.NewWithLogger(logging.Config{
		Headers: []string{"x-request-id"},
		Levels:  map[string]string{"NOT_FOUND": "warn"},
	}, sink)
	if err != nil {
		fmt.Println(err)
		return
	}
	serveExample(access)
	// Output:
	// WARN finished call
	//   grpc.full_method=/users.v1.Users/Get
	//   grpc.service=users.v1.Users
	//   grpc.method=Get
	//   grpc.code=NotFound
	//   grpc.error=user 42 not found
	//   peer.address=10.0.0.7:51234
	//   grpc.authority=api.example.com
	//   grpc.user_agent=grpc-go/1.85.0
	//   grpc.request.messages=1
	//   grpc.request.bytes=4
	//   grpc.response.messages=0
	//   grpc.response.bytes=0
	//   upstream.cluster=users
	//   upstream.code=NotFound
	//   grpc.request.metadata.x-request-id=r-42
	// status: NotFound
}
