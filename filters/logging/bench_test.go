package logging_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	grpclogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/pipeline"
)

// nopHandler enables every level and drops the records: what remains is
// the filter's own cost of building a record.
type nopHandler struct{}

func (nopHandler) Enabled(context.Context, slog.Level) bool  { return true }
func (nopHandler) Handle(context.Context, slog.Record) error { return nil }
func (h nopHandler) WithAttrs([]slog.Attr) slog.Handler      { return h }
func (h nopHandler) WithGroup(string) slog.Handler           { return h }

// BenchmarkHooks measures the filter's two hooks for one call, against a
// fake call with no network: a one-to-one call with a user agent, a
// subject, counters and one listed header. Every iteration ends the same
// call, made before the loop.
func BenchmarkHooks(b *testing.B) {
	cfg := logging.Config{Headers: []string{"x-request-id"}}
	for _, bc := range []struct {
		name string
		new  func() (*logging.Filter, error)
	}{
		{"disabled", func() (*logging.Filter, error) {
			return logging.New(cfg, logging.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError}))))
		}},
		{"nop-handler", func() (*logging.Filter, error) {
			return logging.New(cfg, logging.WithLogger(slog.New(nopHandler{})))
		}},
		{"json", func() (*logging.Filter, error) {
			return logging.New(cfg, logging.WithLogger(slog.New(slog.NewJSONHandler(io.Discard, nil))))
		}},
		{"output", func() (*logging.Filter, error) {
			c := cfg
			c.Output = filepath.Join(b.TempDir(), "access.log")
			return logging.New(c)
		}},
		{"output-dev-null", func() (*logging.Filter, error) { // the record without the file system's cost
			c := cfg
			c.Output = os.DevNull
			return logging.New(c)
		}},
		{"grpc-logger", func() (*logging.Filter, error) {
			return logging.NewWithLogger(cfg, grpclogging.LoggerFunc(func(context.Context, grpclogging.Level, string, ...any) {}))
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := bc.new()
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = f.Close() })
			ctx := pipeline.ContextWithCounters(context.Background(), new(pipeline.Counters))
			peer := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 51234}
			in := metadata.Pairs("x-request-id", "r-42", "user-agent", "grpc-go/1.85.0", "authorization", "Bearer t0ken")
			c := &pipeline.Call{Method: "/users.v1.Users/Get", Authority: "api.example.com", Peer: peer, Inbound: in, Header: metadata.MD{}}
			pipeline.RecordUpstream(c, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK, Duration: time.Millisecond})
			pipeline.ClaimsKey.Set(c, pipeline.Claims{"sub": "alice"})
			end := &pipeline.End{Status: status.New(codes.OK, ""), Trailer: metadata.MD{}}
			b.ReportAllocs()
			for b.Loop() {
				_ = f.OnRequestHeaders(ctx, c)
				f.OnResponseEnd(ctx, c, end)
			}
		})
	}
}
