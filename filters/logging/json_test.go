package logging_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/logging"
	"github.com/manifold-grpc/manifold/pipeline"
)

// TestOutputRecordsMatchJSONHandler: the records an output gets are the
// objects slog's JSONHandler writes for the same calls: the same keys in
// the same order and the same values once parsed, for every shape of
// record and for strings that need escaping (quotes, control characters,
// invalid UTF-8, HTML and JavaScript line separators). The output encodes
// records itself; this is what holds it to JSONHandler.
func TestOutputRecordsMatchJSONHandler(t *testing.T) {
	odd := "quote\" back\\slash\nnew\tline \x01\x1f <b>&amp; \u2028\u2029 bad\xff\xfeutf8 é 🙂"
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
		SpanID:  trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	})
	for _, tc := range []struct {
		name   string
		cfg    logging.Config
		ctx    func() context.Context
		call   func() *pipeline.Call
		status *status.Status
	}{
		{
			name: "bare local reply",
			call: func() *pipeline.Call { return &pipeline.Call{Method: "/pkg.S/M"} },
		},
		{
			name: "one-to-one with everything",
			cfg:  logging.Config{Headers: []string{"x-request-id", "x-trace-bin", "x-multi", "x-absent"}},
			ctx: func() context.Context {
				ctx := pipeline.ContextWithCounters(trace.ContextWithSpanContext(context.Background(), sc), new(pipeline.Counters))
				c := pipeline.CountersFromContext(ctx)
				c.RequestMessages.Store(1)
				c.RequestBytes.Store(16)
				c.ResponseMessages.Store(3)
				c.ResponseBytes.Store(1 << 40)
				return ctx
			},
			call: func() *pipeline.Call {
				c := &pipeline.Call{
					Method: "/users.v1.Users/Get", Authority: "api.example.com", Route: "users",
					Peer:    &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 51234},
					Inbound: metadata.Pairs("x-request-id", "r-42", "user-agent", "grpc-go/1.85.0", "x-trace-bin", "\x00\xff\x10", "x-multi", "a", "x-multi", "b"),
				}
				pipeline.RecordUpstream(c, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "users"}, Code: codes.OK, Duration: 1234567 * time.Nanosecond})
				pipeline.ClaimsKey.Set(c, pipeline.Claims{"sub": "alice"})
				return c
			},
		},
		{
			name:   "error with a message that needs escaping",
			cfg:    logging.Config{Headers: []string{"x-odd"}, Message: odd},
			status: status.New(codes.Unavailable, odd),
			call: func() *pipeline.Call {
				c := &pipeline.Call{Method: "/pkg.S/" + odd, Authority: odd, Inbound: metadata.MD{"x-odd": {odd}, "user-agent": {odd}}}
				pipeline.ClaimsKey.Set(c, pipeline.Claims{"sub": odd})
				pipeline.RecordUpstream(c, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: odd}, Code: codes.Unavailable})
				return c
			},
		},
		{
			name: "IPv6 peer with a zone",
			call: func() *pipeline.Call {
				c := &pipeline.Call{Method: "/pkg.S/M", Peer: &net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 443, Zone: "eth0"}}
				pipeline.RecordUpstream(c, pipeline.UpstreamResult{Upstream: pipeline.Upstream{Cluster: "c"}, Code: codes.NotFound, Duration: 999 * time.Nanosecond})
				return c
			},
		},
		{
			name:   "fan-out",
			status: status.New(codes.OK, ""),
			call: func() *pipeline.Call {
				c := &pipeline.Call{Method: "/machines.v1.Machines/Version", Peer: &net.TCPAddr{IP: net.IPv4(10, 0, 0, 7), Port: 1}}
				for i, code := range []codes.Code{codes.OK, codes.DeadlineExceeded, codes.OK} {
					pipeline.RecordUpstream(c, pipeline.UpstreamResult{
						Upstream: pipeline.Upstream{Cluster: "machines", Member: "n" + string(rune('0'+i))},
						Code:     code, Duration: time.Duration(i) * 1500 * time.Microsecond,
					})
				}
				return c
			},
		},
		{
			name:   "code past 16 at error, unix socket peer",
			status: status.New(codes.Code(42), "what"),
			call: func() *pipeline.Call {
				return &pipeline.Call{Method: "/pkg.S/M", Peer: &net.UnixAddr{Name: "/run/manifold.sock", Net: "unix"}}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			st := tc.status
			if st == nil {
				st = status.New(codes.OK, "")
			}
			var handler bytes.Buffer
			viaHandler, err := logging.New(tc.cfg, logging.WithLogger(slog.New(slog.NewJSONHandler(&handler, nil))))
			if err != nil {
				t.Fatal(err)
			}
			cfg := tc.cfg
			cfg.Output = filepath.Join(t.TempDir(), "access.log")
			viaOutput, err := logging.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			call := tc.call()
			if call.Inbound == nil {
				call.Inbound = metadata.MD{}
			}
			call.Header = metadata.MD{}
			before := time.Now()
			for _, f := range []*logging.Filter{viaHandler, viaOutput} {
				_ = f.OnRequestHeaders(ctx, call)
				f.OnResponseEnd(ctx, call, &pipeline.End{Status: st, Trailer: metadata.MD{}})
			}
			after := time.Now()
			if err := viaOutput.Close(); err != nil {
				t.Fatal(err)
			}

			got := readRecords(t, cfg.Output)
			if len(got) != 1 {
				t.Fatalf("%d records in the output, want 1", len(got))
			}
			var want map[string]any
			if err := json.Unmarshal(handler.Bytes(), &want); err != nil {
				t.Fatalf("JSONHandler's record: %v", err)
			}
			ts, err := time.Parse(time.RFC3339Nano, got[0]["time"].(string))
			if err != nil || ts.Before(before.Truncate(time.Millisecond)) || ts.After(after) {
				t.Errorf("time %v (%v), want a time between %v and %v", got[0]["time"], err, before, after)
			}
			// JSONHandler writes time.RFC3339Nano: every digit of the
			// fraction it needs, as Format writes it.
			if s := got[0]["time"].(string); err == nil && ts.Format(time.RFC3339Nano) != s {
				t.Errorf("time %q, want RFC3339Nano's text %q", s, ts.Format(time.RFC3339Nano))
			}
			if ms, ok := got[0][logging.KeyTimeMS].(string); !ok || strings.Trim(ms, "0123456789.") != "" {
				t.Errorf("%s = %#v, want a decimal string", logging.KeyTimeMS, got[0][logging.KeyTimeMS])
			}
			for _, k := range []string{"time", logging.KeyTimeMS} { // the two filters took their own clock readings
				delete(got[0], k)
				delete(want, k)
			}
			if !reflect.DeepEqual(got[0], want) {
				t.Errorf("output record\n%v\nJSONHandler's\n%v", got[0], want)
			}
			gotKeys, wantKeys := topKeys(t, readLine(t, cfg.Output)), topKeys(t, handler.Bytes())
			if !reflect.DeepEqual(gotKeys, wantKeys) {
				t.Errorf("output keys %v, JSONHandler's %v", gotKeys, wantKeys)
			}
		})
	}
}

// readLine returns the first line of path.
func readLine(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	return line
}

// topKeys returns the keys of the JSON object in b, in order.
func topKeys(t *testing.T, b []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	if _, err := dec.Token(); err != nil { // {
		t.Fatal(err)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}
