package auth_test

import (
	"context"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// seenKeys are the request headers the backend reports back, each as
// response header "seen-<key>".
var seenKeys = []string{"authorization", "x-jwt-sub", "x-seen-sub"}

// reportingService answers every call kind with the request headers it got
// in seenKeys, and counts the calls.
func reportingService(calls *atomic.Int32) *testbackend.Service {
	report := func(ctx context.Context) error {
		calls.Add(1)
		in, _ := metadata.FromIncomingContext(ctx)
		out := metadata.MD{}
		for _, k := range seenKeys {
			if v := in[k]; len(v) > 0 {
				out["seen-"+k] = v
			}
		}
		return grpc.SetHeader(ctx, out)
	}
	return &testbackend.Service{
		Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := report(ctx); err != nil {
				return nil, err
			}
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
		Bidi: func(s testpb.TestService_FullDuplexCallServer) error {
			if err := report(s.Context()); err != nil {
				return err
			}
			for {
				req, err := s.Recv()
				if err == io.EOF {
					return nil
				}
				if err != nil {
					return err
				}
				if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: req.GetPayload()}); err != nil {
					return err
				}
			}
		},
	}
}

// claimsReader is a later filter that copies the subject it finds under
// pipeline.ClaimsKey into x-seen-sub.
var claimsReader = pipeline.RequestHeadersFunc("claims-reader", func(_ context.Context, call *pipeline.Call) error {
	if c, ok := pipeline.ClaimsKey.Get(call); ok {
		call.Header.Set("x-seen-sub", "claims:"+c.Subject())
	}
	return nil
})

// e2eEnv is a proxy whose chain is [auth, claimsReader] in front of a
// reporting backend.
type e2eEnv struct {
	*proxytest.Env
	calls atomic.Int32
}

func startE2E(t *testing.T, cfg auth.Config) *e2eEnv {
	t.Helper()
	return startE2EWith(t, newFilter(t, cfg))
}

// startE2EWith is startE2E with a filter built by the test.
func startE2EWith(t *testing.T, f *auth.Filter) *e2eEnv {
	t.Helper()
	e := &e2eEnv{}
	addr, _ := testbackend.Start(t, reportingService(&e.calls))
	e.Env = proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{f, claimsReader}})
	return e
}

// unary calls UnaryCall with md and returns the backend's report.
func (e *e2eEnv) unary(t *testing.T, md metadata.MD) (metadata.MD, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var header metadata.MD
	_, err := e.Client.UnaryCall(metadata.NewOutgoingContext(ctx, md), &testpb.SimpleRequest{}, grpc.Header(&header))
	return header, err
}

func requireSeen(t *testing.T, header metadata.MD, key string, want ...string) {
	t.Helper()
	if got := header["seen-"+key]; !slices.Equal(got, want) {
		t.Errorf("backend saw %s = %q, want %q", key, got, want)
	}
}

// TestEndToEnd runs the filter in a real chain through the proxy: the
// backend sees the verified subject and never the client's forged one nor
// the token, a later filter sees the claims, refused calls never reach the
// backend, and public routes forward no claim header at all.
func TestEndToEnd(t *testing.T) {
	t.Parallel()
	forward := map[string]string{"sub": "x-jwt-sub"}
	rules := []auth.Rule{
		{Methods: []string{"/grpc.testing.TestService/FullDuplexCall"}, Claims: map[string]string{"scope": "stream"}},
	}

	t.Run("verified", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{Providers: staticProviders(t), Rules: rules, ForwardClaims: forward})
		md := bearerMD(rsaToken(t))
		md.Set("x-jwt-sub", "admin")
		header, err := e.unary(t, md)
		if err != nil {
			t.Fatal(err)
		}
		requireSeen(t, header, "x-jwt-sub", "alice")
		requireSeen(t, header, "x-seen-sub", "claims:alice")
		requireSeen(t, header, "authorization")
	})

	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{Providers: staticProviders(t), Rules: rules, ForwardClaims: forward})
		md := metadata.Pairs("x-jwt-sub", "admin")
		_, err := e.unary(t, md)
		requireCode(t, err, codes.Unauthenticated, "auth: token missing")
		md = bearerMD(rsaToken(t, "exp", time.Now().Add(-time.Hour).Unix()))
		_, err = e.unary(t, md)
		requireCode(t, err, codes.Unauthenticated, "auth: token expired")
		if n := e.calls.Load(); n != 0 {
			t.Errorf("backend handled %d calls, want 0", n)
		}
	})

	t.Run("stream with required claim", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{Providers: staticProviders(t), Rules: rules, ForwardClaims: forward})
		bidi := func(token string) (metadata.MD, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := e.Client.FullDuplexCall(metadata.NewOutgoingContext(ctx, bearerMD(token)))
			if err != nil {
				return nil, err
			}
			if err := s.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("hi")}}); err != nil && err != io.EOF {
				return nil, err
			}
			if _, err := s.Recv(); err != nil {
				return nil, err
			}
			if err := s.CloseSend(); err != nil {
				return nil, err
			}
			return s.Header()
		}
		_, err := bidi(rsaToken(t, "scope", "read"))
		requireCode(t, err, codes.PermissionDenied, `auth: claim "scope" lacks a required value`)
		if n := e.calls.Load(); n != 0 {
			t.Errorf("backend handled %d calls, want 0", n)
		}
		header, err := bidi(rsaToken(t, "scope", "read stream"))
		if err != nil {
			t.Fatal(err)
		}
		requireSeen(t, header, "x-jwt-sub", "alice")
		requireSeen(t, header, "x-seen-sub", "claims:alice")
	})

	t.Run("public", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{
			Providers:     staticProviders(t),
			Rules:         []auth.Rule{{Methods: []string{"/grpc.testing.*"}, Action: auth.Public}},
			ForwardClaims: forward,
		})
		for _, md := range []metadata.MD{
			metadata.Pairs("x-jwt-sub", "admin"),
			metadata.Pairs("x-jwt-sub", "admin", "authorization", "Bearer "+rsaToken(t)),
			metadata.Pairs("x-jwt-sub", "admin", "authorization", "Bearer garbage"),
		} {
			header, err := e.unary(t, md)
			if err != nil {
				t.Fatal(err)
			}
			requireSeen(t, header, "x-jwt-sub")
			requireSeen(t, header, "x-seen-sub")
			requireSeen(t, header, "authorization")
		}
	})

	t.Run("allow_missing", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{
			Providers:     staticProviders(t),
			Rules:         []auth.Rule{{Methods: []string{"*"}, Action: auth.AllowMissing}},
			ForwardClaims: forward,
		})
		header, err := e.unary(t, metadata.Pairs("x-jwt-sub", "admin"))
		if err != nil {
			t.Fatal(err)
		}
		requireSeen(t, header, "x-jwt-sub")
		header, err = e.unary(t, bearerMD(rsaToken(t)))
		if err != nil {
			t.Fatal(err)
		}
		requireSeen(t, header, "x-jwt-sub", "alice")
		_, err = e.unary(t, bearerMD("garbage"))
		requireCode(t, err, codes.Unauthenticated, "auth: malformed token")
	})

	t.Run("keep_token", func(t *testing.T) {
		t.Parallel()
		e := startE2E(t, auth.Config{Providers: staticProviders(t), ForwardClaims: forward, KeepToken: true})
		tok := rsaToken(t)
		header, err := e.unary(t, bearerMD(tok))
		if err != nil {
			t.Fatal(err)
		}
		requireSeen(t, header, "authorization", "Bearer "+tok)
		requireSeen(t, header, "x-jwt-sub", "alice")
	})
}

// TestHeaderOnly checks that a chain of the auth filter touches only
// request headers, so a data path may skip the message layer for it.
func TestHeaderOnly(t *testing.T) {
	t.Parallel()
	f := newFilter(t, auth.Config{Providers: staticProviders(t)})
	terminal := pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })
	chain, err := pipeline.Build([]pipeline.Filter{f}, terminal)
	if err != nil {
		t.Fatal(err)
	}
	if got := chain.Touches(); got != pipeline.TouchRequestHeaders || got.NeedsMessages() {
		t.Errorf("chain touches %b, want request headers only", got)
	}
}
