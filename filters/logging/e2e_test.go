package logging_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

func callCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newFilter builds the access log for cfg, logging to c.
func newFilter(t *testing.T, cfg logging.Config, c *capture) *logging.Filter {
	t.Helper()
	f, err := logging.New(cfg, logging.WithLogger(c.logger()))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// start serves a proxy with filters in front of svc.
func start(t *testing.T, svc *testbackend.Service, filters ...pipeline.Filter) *proxytest.Env {
	t.Helper()
	addr, _ := testbackend.Start(t, svc)
	return proxytest.Start(t, addr, proxytest.Config{Filters: filters})
}

// failWith is a backend whose unary call fails with code.
func failWith(code codes.Code) *testbackend.Service {
	return &testbackend.Service{
		Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			return nil, status.Error(code, "backend says "+code.String())
		},
	}
}

// TestUnary checks every attribute of a successful unary call's record,
// with the filter built from its registered config as a config file would.
func TestUnary(t *testing.T) {
	c := newCapture(nil)
	m, ok := pipeline.Lookup("logging")
	if !ok {
		t.Fatal(`module "logging" is not registered`)
	}
	cfg := m.New()
	cfg.(*logging.Config).Headers = []string{"x-request-id"}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	f, err := cfg.Build(pipeline.BuildEnv{Logger: c.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "logging" {
		t.Errorf("Name() = %q, want logging", f.Name())
	}
	env := start(t, &testbackend.Service{}, f)

	req := &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("hello, proxy")}}
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "x-request-id", "r-17", "x-other", "not-logged")
	resp, err := env.Client.UnaryCall(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	r := c.wait(t, 1)[0]

	if r.Level != slog.LevelInfo || r.Msg != logging.DefaultMessage {
		t.Errorf("level %v msg %q, want INFO %q", r.Level, r.Msg, logging.DefaultMessage)
	}
	for key, want := range map[string]string{
		logging.KeyFullMethod:                 "/grpc.testing.TestService/UnaryCall",
		logging.KeyService:                    "grpc.testing.TestService",
		logging.KeyMethod:                     "UnaryCall",
		logging.KeyCode:                       "OK",
		logging.KeyAuthority:                  env.ProxyAddr,
		"upstream.cluster":                    "backend",
		"upstream.code":                       "OK",
		logging.KeyMetadata + ".x-request-id": "r-17",
	} {
		if got := r.str(t, key); got != want {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	host, port, err := net.SplitHostPort(r.str(t, logging.KeyPeer))
	if err != nil || host != "127.0.0.1" || port == "0" {
		t.Errorf("%s = %q, want 127.0.0.1:port", logging.KeyPeer, r.str(t, logging.KeyPeer))
	}
	if ua := r.str(t, logging.KeyUserAgent); !strings.HasPrefix(ua, "grpc-go/") {
		t.Errorf("%s = %q, want grpc-go/…", logging.KeyUserAgent, ua)
	}
	for key, want := range map[string]int64{
		logging.KeyRequestMessages:  1,
		logging.KeyRequestBytes:     int64(proto.Size(req)),
		logging.KeyResponseMessages: 1,
		logging.KeyResponseBytes:    int64(proto.Size(resp)),
	} {
		if got := r.int(t, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	if r.int(t, logging.KeyRequestBytes) == 0 {
		t.Error("request bytes = 0")
	}
	took, upTook := r.millis(t, logging.KeyTimeMS), r.millis(t, "upstream.time_ms")
	if took <= 0 || upTook <= 0 || upTook > took {
		t.Errorf("time_ms %v, upstream.time_ms %v: want 0 < upstream <= call", took, upTook)
	}
	r.absent(t, logging.KeyError, logging.KeyRoute, logging.KeyUpstreams, logging.KeyTraceID, logging.KeySpanID,
		logging.KeySubject, logging.KeyMetadata+".x-other", "upstream.member")
}

// TestHeaderOnly checks that the access log adds no message hooks to a
// chain: calls through it can be forwarded below grpc-go's message layer.
func TestHeaderOnly(t *testing.T) {
	f := newFilter(t, logging.Config{}, newCapture(nil))
	cl, err := cluster.New(cluster.Config{Name: "backend", Target: "passthrough:///127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	chain, err := pipeline.Build([]pipeline.Filter{f}, route.New(cl))
	if err != nil {
		t.Fatal(err)
	}
	touch := chain.Touches()
	if touch.NeedsMessages() {
		t.Errorf("chain touches %b: needs messages", touch)
	}
	if want := pipeline.TouchRequestHeaders | pipeline.TouchResponseEnd | pipeline.TouchCounters; touch != want {
		t.Errorf("chain touches %b, want %b", touch, want)
	}
}

// TestLevelByCode checks the default levels end to end: a backend's client
// errors at info, its server errors at error, with the code and message.
func TestLevelByCode(t *testing.T) {
	for _, tc := range []struct {
		code  codes.Code
		level slog.Level
	}{
		{codes.NotFound, slog.LevelInfo},
		{codes.InvalidArgument, slog.LevelInfo},
		{codes.PermissionDenied, slog.LevelInfo},
		{codes.Internal, slog.LevelError},
		{codes.Unavailable, slog.LevelError},
		{codes.DataLoss, slog.LevelError},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			c := newCapture(nil)
			env := start(t, failWith(tc.code), newFilter(t, logging.Config{}, c))
			_, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
			if status.Code(err) != tc.code {
				t.Fatalf("call: %v, want %v", err, tc.code)
			}
			r := c.wait(t, 1)[0]
			if r.Level != tc.level {
				t.Errorf("level %v, want %v", r.Level, tc.level)
			}
			if got := r.str(t, logging.KeyCode); got != tc.code.String() {
				t.Errorf("code %q, want %q", got, tc.code)
			}
			if got, want := r.str(t, logging.KeyError), "backend says "+tc.code.String(); got != want {
				t.Errorf("error %q, want %q", got, want)
			}
			if got := r.str(t, "upstream.code"); got != tc.code.String() {
				t.Errorf("upstream.code %q, want %q", got, tc.code)
			}
			if got := r.int(t, logging.KeyResponseMessages); got != 0 {
				t.Errorf("response messages %d, want 0", got)
			}
		})
	}
}

// TestStreaming checks the counts of a bidi call: 3 requests, 5 responses,
// and exactly the bytes of their encodings.
func TestStreaming(t *testing.T) {
	c := newCapture(nil)
	var sent []*testpb.StreamingOutputCallResponse
	for i := range 5 {
		sent = append(sent, &testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte(strings.Repeat("r", 10*i+1))}})
	}
	env := start(t, &testbackend.Service{
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error {
			for {
				if _, err := s.Recv(); err == io.EOF {
					break
				} else if err != nil {
					return err
				}
			}
			for _, m := range sent {
				if err := s.Send(m); err != nil {
					return err
				}
			}
			return nil
		},
	}, newFilter(t, logging.Config{}, c))

	stream, err := env.Client.FullDuplexCall(callCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var reqBytes, respBytes int64
	for i := range 3 {
		req := &testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte(strings.Repeat("q", 7*i+3))}}
		reqBytes += int64(proto.Size(req))
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	n := 0
	for {
		if _, err := stream.Recv(); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("got %d responses, want 5", n)
	}
	for _, m := range sent {
		respBytes += int64(proto.Size(m))
	}

	r := c.wait(t, 1)[0]
	for key, want := range map[string]int64{
		logging.KeyRequestMessages:  3,
		logging.KeyRequestBytes:     reqBytes,
		logging.KeyResponseMessages: 5,
		logging.KeyResponseBytes:    respBytes,
	} {
		if got := r.int(t, key); got != want {
			t.Errorf("%s = %d, want %d", key, got, want)
		}
	}
	if got := r.str(t, logging.KeyMethod); got != "FullDuplexCall" {
		t.Errorf("method %q", got)
	}
}

// TestLocalReply checks that a later filter's local reply is logged with its
// status, and without an upstream, since none was called.
func TestLocalReply(t *testing.T) {
	c := newCapture(nil)
	deny := pipeline.RequestHeadersFunc("deny", func(context.Context, *pipeline.Call) error {
		return status.Error(codes.PermissionDenied, "deny: tenant may not call")
	})
	env := start(t, &testbackend.Service{}, newFilter(t, logging.Config{}, c), deny)
	_, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("call: %v, want PermissionDenied", err)
	}
	r := c.wait(t, 1)[0]
	if r.Level != slog.LevelInfo {
		t.Errorf("level %v, want INFO", r.Level)
	}
	if got := r.str(t, logging.KeyCode); got != "PermissionDenied" {
		t.Errorf("code %q", got)
	}
	if got := r.str(t, logging.KeyError); got != "deny: tenant may not call" {
		t.Errorf("error %q", got)
	}
	r.absent(t, "upstream.cluster", logging.KeyUpstreams)
	if got := r.int(t, logging.KeyResponseMessages); got != 0 {
		t.Errorf("response messages %d, want 0", got)
	}
}

// TestHeaders checks that exactly the listed metadata is logged, and that
// credentials never reach the log, whatever the client sends.
func TestHeaders(t *testing.T) {
	c := newCapture(nil)
	f := newFilter(t, logging.Config{
		Headers:       []string{"x-request-id", "X-Tenant", "x-absent", "x-trace-bin"},
		SecretHeaders: []string{"x-api-key"},
	}, c)
	// A later filter generates a request id when the client sent none.
	reqID := pipeline.RequestHeadersFunc("request-id", func(_ context.Context, call *pipeline.Call) error {
		if len(call.Inbound["x-request-id"]) == 0 {
			call.Header.Set("x-request-id", "generated-1")
		}
		return nil
	})
	env := start(t, &testbackend.Service{}, f, reqID)

	ctx := metadata.AppendToOutgoingContext(callCtx(t),
		"x-request-id", "r-1",
		"x-tenant", "acme", "x-tenant", "globex",
		"x-trace-bin", string([]byte{0, 1, 2}),
		"authorization", "Bearer secret-token",
		"proxy-authorization", "Basic secret-proxy",
		"cookie", "session=secret-cookie",
		"x-api-key", "secret-key",
	)
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	recs := c.wait(t, 2)

	want := map[string]string{
		logging.KeyMetadata + ".x-request-id": "r-1",
		logging.KeyMetadata + ".x-tenant":     "acme, globex",
		logging.KeyMetadata + ".x-trace-bin":  "AAEC",
	}
	for key, v := range want {
		if got := recs[0].str(t, key); got != v {
			t.Errorf("%s = %q, want %q", key, got, v)
		}
	}
	for _, k := range recs[0].keys {
		if strings.HasPrefix(k, logging.KeyMetadata+".") && want[k] == "" {
			t.Errorf("unlisted metadata logged: %s", k)
		}
	}
	if got := recs[1].str(t, logging.KeyMetadata+".x-request-id"); got != "generated-1" {
		t.Errorf("second call: x-request-id %q, want the generated id", got)
	}
	out := c.text()
	for _, s := range []string{"secret", "authorization", "cookie", "x-api-key"} {
		if strings.Contains(out, s) {
			t.Errorf("log contains %q:\n%s", s, out)
		}
	}
}

// TestSubject checks that the subject of the claims a later filter (an
// authenticating one) stores is logged.
func TestSubject(t *testing.T) {
	c := newCapture(nil)
	auth := pipeline.RequestHeadersFunc("auth-stub", func(_ context.Context, call *pipeline.Call) error {
		pipeline.ClaimsKey.Set(call, pipeline.Claims{"sub": "alice", "scope": "read"})
		return nil
	})
	env := start(t, &testbackend.Service{}, newFilter(t, logging.Config{}, c), auth)
	if _, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	if got := c.wait(t, 1)[0].str(t, logging.KeySubject); got != "alice" {
		t.Errorf("subject %q, want alice", got)
	}
}

// TestRoute checks that the route a router chose is logged by a filter of
// the global chain.
func TestRoute(t *testing.T) {
	c := newCapture(nil)
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters: []pipeline.Filter{newFilter(t, logging.Config{}, c)},
		Terminal: func(cl *cluster.Cluster) pipeline.Handler {
			r, err := router.New(router.Route{Name: "tests", Match: router.Match{Service: "grpc.testing.TestService"}, Handler: route.New(cl)})
			if err != nil {
				t.Fatal(err)
			}
			return r
		},
	})
	if _, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	r := c.wait(t, 1)[0]
	if got := r.str(t, logging.KeyRoute); got != "tests" {
		t.Errorf("route %q, want tests", got)
	}
	if got := r.str(t, "upstream.cluster"); got != "backend" {
		t.Errorf("upstream.cluster %q, want backend", got)
	}
}

// TestLevels checks overridden levels, and that a record below the
// logger's level is not written at all.
func TestLevels(t *testing.T) {
	cfg := logging.Config{Levels: map[string]string{"OK": "debug", "not_found": "WARN", "Internal": "info+2"}}
	for _, tc := range []struct {
		name     string
		min      slog.Level
		code     codes.Code
		want     slog.Level
		recorded bool
	}{
		{"ok at debug", slog.LevelDebug, codes.OK, slog.LevelDebug, true},
		{"ok below info", slog.LevelInfo, codes.OK, 0, false},
		{"not found", slog.LevelInfo, codes.NotFound, slog.LevelWarn, true},
		{"internal", slog.LevelInfo, codes.Internal, slog.LevelInfo + 2, true},
		{"unavailable keeps default", slog.LevelInfo, codes.Unavailable, slog.LevelError, true},
		{"canceled keeps default", slog.LevelInfo, codes.Canceled, slog.LevelInfo, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCapture(tc.min)
			svc := &testbackend.Service{}
			if tc.code != codes.OK {
				svc = failWith(tc.code)
			}
			env := start(t, svc, newFilter(t, cfg, c))
			_, err := env.Client.UnaryCall(callCtx(t), &testpb.SimpleRequest{})
			if status.Code(err) != tc.code {
				t.Fatalf("call: %v", err)
			}
			if !tc.recorded {
				c.wait(t, 0)
				return
			}
			if r := c.wait(t, 1)[0]; r.Level != tc.want {
				t.Errorf("level %v, want %v", r.Level, tc.want)
			}
		})
	}
}
