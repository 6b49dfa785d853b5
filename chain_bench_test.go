package manifold

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/filters/tracing"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// BenchmarkBuiltinChain measures what the three header-only built-in
// filters cost, one at a time and together: unary 16 B calls directly and
// through proxies whose chains are empty, auth (HS256 token), logging (an
// access record per call, written to a discarding slog handler) and
// tracing (an SDK tracer provider with a no-op exporter, an SDK meter
// provider with a manual reader). Everything runs in one process, so the
// filters' share of the proxy's own cost is (chain − empty) ÷ (empty −
// direct).
func BenchmarkBuiltinChain(b *testing.B) {
	key := []byte("0123456789abcdef0123456789abcdef-bench-secret")
	secret := filepath.Join(b.TempDir(), "hmac.secret")
	if err := os.WriteFile(secret, key, 0o600); err != nil {
		b.Fatal(err)
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"iss": "bench", "sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
	}).SignedString(key)
	if err != nil {
		b.Fatal(err)
	}
	newAuth := func() pipeline.Filter {
		f, err := auth.New(auth.Config{Providers: []auth.Provider{{Name: "p", Issuer: "bench", Algorithms: []string{"HS256"}, HMACSecretFile: secret}}})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = f.Close() })
		return f
	}
	newLogging := func() pipeline.Filter {
		f, err := logging.New(logging.Config{}, logging.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
		if err != nil {
			b.Fatal(err)
		}
		return f
	}
	newTracing := func() pipeline.Filter {
		tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
		b.Cleanup(func() {
			_ = tp.Shutdown(context.Background())
			_ = mp.Shutdown(context.Background())
		})
		f, err := tracing.New(tracing.WithTracerProvider(tp), tracing.WithMeterProvider(mp))
		if err != nil {
			b.Fatal(err)
		}
		return f
	}

	addr, _ := testbackend.Start(b, &testbackend.Service{})
	req := &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: make([]byte, 16)}}
	for _, tc := range []struct {
		name    string
		filters func() []pipeline.Filter
	}{
		{"direct", nil},
		{"empty chain", func() []pipeline.Filter { return nil }},
		{"auth", func() []pipeline.Filter { return []pipeline.Filter{newAuth()} }},
		{"logging", func() []pipeline.Filter { return []pipeline.Filter{newLogging()} }},
		{"tracing", func() []pipeline.Filter { return []pipeline.Filter{newTracing()} }},
		{"auth+logging+tracing", func() []pipeline.Filter {
			return []pipeline.Filter{newLogging(), newTracing(), newAuth()}
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			var client testgrpc.TestServiceClient
			if tc.filters == nil {
				client = testgrpc.NewTestServiceClient(proxytest.Dial(b, addr))
			} else {
				client = proxytest.Start(b, addr, proxytest.Config{Filters: tc.filters()}).Client
			}
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
			if _, err := client.UnaryCall(ctx, req); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := client.UnaryCall(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
