package logging_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	grpclogging "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/logging"
)

// TestGRPCLoggerSink checks that a go-grpc-middleware logging.Logger
// receives the record, with its level and flat key/value fields.
func TestGRPCLoggerSink(t *testing.T) {
	type logged struct {
		level  grpclogging.Level
		msg    string
		fields map[string]any
	}
	var mu sync.Mutex
	var got []logged
	sink := grpclogging.LoggerFunc(func(_ context.Context, level grpclogging.Level, msg string, fields ...any) {
		if len(fields)%2 != 0 {
			t.Errorf("odd number of fields: %v", fields)
		}
		m := map[string]any{}
		for i := 0; i+1 < len(fields); i += 2 {
			k, ok := fields[i].(string)
			if !ok {
				t.Errorf("field key %v is %T", fields[i], fields[i])
			}
			m[k] = fields[i+1]
		}
		mu.Lock()
		got = append(got, logged{level, msg, m})
		mu.Unlock()
	})
	f, err := logging.NewWithLogger(logging.Config{Message: "rpc", Headers: []string{"x-request-id"}}, sink)
	if err != nil {
		t.Fatal(err)
	}
	env := start(t, failWith(codes.Internal), f)
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "x-request-id", "r-9")
	if _, err := env.Client.UnaryCall(ctx, &testpb.SimpleRequest{}); status.Code(err) != codes.Internal {
		t.Fatalf("call: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 {
		t.Fatalf("sink got %d records, want 1", len(got))
	}
	r := got[0]
	if r.level != grpclogging.LevelError || r.msg != "rpc" {
		t.Errorf("level %v msg %q, want ERROR rpc", r.level, r.msg)
	}
	for k, want := range map[string]string{
		logging.KeyService:                    "grpc.testing.TestService",
		logging.KeyMethod:                     "UnaryCall",
		logging.KeyCode:                       "Internal",
		logging.KeyError:                      "backend says Internal",
		"upstream.cluster":                    "backend",
		"upstream.code":                       "Internal",
		logging.KeyMetadata + ".x-request-id": "r-9",
	} {
		if v := fmt.Sprint(r.fields[k]); v != want {
			t.Errorf("%s = %q, want %q", k, v, want)
		}
	}
	if v, ok := r.fields[logging.KeyRequestMessages].(int64); !ok || v != 1 {
		t.Errorf("%s = %#v, want int64 1", logging.KeyRequestMessages, r.fields[logging.KeyRequestMessages])
	}
	if v, ok := r.fields[logging.KeyTimeMS].(string); !ok || v == "" || v == "0" {
		t.Errorf("%s = %#v, want a positive duration as a decimal string, as go-grpc-middleware writes it", logging.KeyTimeMS, r.fields[logging.KeyTimeMS])
	}
}

func TestNewWithNilLogger(t *testing.T) {
	if _, err := logging.NewWithLogger(logging.Config{}, nil); err == nil {
		t.Error("NewWithLogger(nil) succeeded")
	}
}

// TestNewChecksConfig checks that the constructors refuse what Validate
// refuses, so that no filter is ever built from a config that logs
// credentials.
func TestNewChecksConfig(t *testing.T) {
	bad := logging.Config{Headers: []string{"authorization"}}
	if _, err := logging.New(bad); err == nil {
		t.Error("New accepted headers: [authorization]")
	}
	if _, err := logging.NewWithLogger(bad, grpclogging.LoggerFunc(func(context.Context, grpclogging.Level, string, ...any) {})); err == nil {
		t.Error("NewWithLogger accepted headers: [authorization]")
	}
}
