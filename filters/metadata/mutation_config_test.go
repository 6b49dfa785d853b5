package metadata_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	grpcmd "google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/pipeline"
)

// TestHeadersValidate: every reserved, pseudo, hop-by-hop or malformed key
// and every bad value or operation is rejected, with the field's path.
func TestHeadersValidate(t *testing.T) {
	t.Parallel()
	set := func(key string) []metadata.HeaderOp {
		return []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: key, Value: "v"}}}
	}
	tests := []struct {
		name string
		cfg  metadata.HeadersConfig
		want []string // each a line of the error; none for a valid config
	}{
		{"empty", metadata.HeadersConfig{}, nil},
		{"every source", metadata.HeadersConfig{Request: []metadata.HeaderOp{
			{Set: &metadata.HeaderValue{Key: "x-a", Value: "printable ASCII ~!"}},
			{Set: &metadata.HeaderValue{Key: "x-a-bin", Value: "\x00\xff"}},
			{Add: &metadata.HeaderValue{Key: "x_b.c", Claim: "sub", Default: "anonymous"}},
			{Add: &metadata.HeaderValue{Key: "x-c", Header: "user-agent"}},
			{Add: &metadata.HeaderValue{Key: "x-d", From: metadata.FromPeer}},
			{Add: &metadata.HeaderValue{Key: "x-e", From: metadata.FromAuthority}},
			{Add: &metadata.HeaderValue{Key: "x-f", From: metadata.FromMethod}},
			{Add: &metadata.HeaderValue{Key: "x-g", Func: func(context.Context, *pipeline.Call) (string, bool) { return "", false }}},
			{Remove: &metadata.HeaderRemove{Key: "authorization"}},
			{Rename: &metadata.HeaderRename{Key: "x-a", To: "x-b-bin"}},
		}}, nil},
		{"internal key on the request side", metadata.HeadersConfig{Request: set("x-manifold-route")}, nil},

		{"grpc-timeout", metadata.HeadersConfig{Request: append(set("x-ok"), append(set("x-ok"), set("grpc-timeout")...)...)},
			[]string{`request[2].set.key: "grpc-timeout" is reserved`}},
		{"grpc-status-details-bin", metadata.HeadersConfig{Trailers: set("grpc-status-details-bin")},
			[]string{`trailers[0].set.key: "grpc-status-details-bin" is reserved`}},
		{"grpc-status", metadata.HeadersConfig{Trailers: []metadata.HeaderOp{{Remove: &metadata.HeaderRemove{Key: "grpc-status"}}}},
			[]string{`trailers[0].remove.key: "grpc-status" is reserved`}},
		{"grpc-message", metadata.HeadersConfig{Trailers: set("grpc-message")},
			[]string{`trailers[0].set.key: "grpc-message" is reserved`}},
		{"any grpc- key", metadata.HeadersConfig{Response: set("grpc-custom")},
			[]string{`response[0].set.key: "grpc-custom" is reserved`}},
		{":authority", metadata.HeadersConfig{Request: set(":authority")},
			[]string{`request[0].set.key: ":authority" is a pseudo-header`}},
		{":path", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Remove: &metadata.HeaderRemove{Key: ":path"}}}},
			[]string{`request[0].remove.key: ":path" is a pseudo-header`}},
		{"te", metadata.HeadersConfig{Request: set("te")},
			[]string{`request[0].set.key: "te" is a hop-by-hop header`}},
		{"content-type", metadata.HeadersConfig{Response: set("content-type")},
			[]string{`response[0].set.key: "content-type" is a hop-by-hop header`}},
		{"user-agent", metadata.HeadersConfig{Request: set("user-agent")},
			[]string{`request[0].set.key: "user-agent" is a hop-by-hop header`}},
		{"connection", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Add: &metadata.HeaderValue{Key: "connection", Value: "close"}}}},
			[]string{`request[0].add.key: "connection" is a hop-by-hop header`}},
		{"host", metadata.HeadersConfig{Request: set("host")},
			[]string{`request[0].set.key: "host" is a hop-by-hop header`}},
		{"internal key on the response side", metadata.HeadersConfig{Response: set("x-manifold-route")},
			[]string{`response[0].set.key: "x-manifold-route" is internal to Manifold; only the request side may set it`}},
		{"internal key renamed to on the trailers side", metadata.HeadersConfig{Trailers: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-a", To: "x-manifold-a"}}}},
			[]string{`trailers[0].rename.to: "x-manifold-a" is internal to Manifold; only the request side may set it`}},
		{"internal key removed on the response side", metadata.HeadersConfig{Response: []metadata.HeaderOp{{Remove: &metadata.HeaderRemove{Key: "x-manifold-route"}}}}, nil},
		{"empty key", metadata.HeadersConfig{Request: set("")},
			[]string{`request[0].set.key: must not be empty`}},
		{"uppercase key", metadata.HeadersConfig{Request: set("X-Tenant")},
			[]string{`request[0].set.key: "X-Tenant" must be lowercase`}},
		{"space in key", metadata.HeadersConfig{Request: set("x tenant")},
			[]string{`request[0].set.key: "x tenant" may only hold lowercase letters, digits, '-', '_' and '.'`}},
		{"colon in key", metadata.HeadersConfig{Request: set("x:a")},
			[]string{`request[0].set.key: "x:a" may only hold lowercase letters, digits, '-', '_' and '.'`}},
		{"non-ASCII key", metadata.HeadersConfig{Request: set("x-é")},
			[]string{`request[0].set.key: "x-é" may only hold lowercase letters, digits, '-', '_' and '.'`}},
		{"control character in value", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Value: "a\nb"}}}},
			[]string{`request[0].set.value: "a\nb" is not printable ASCII, which a key without the -bin suffix needs`}},
		{"non-ASCII value", metadata.HeadersConfig{Response: []metadata.HeaderOp{{Add: &metadata.HeaderValue{Key: "x-a", Value: "Zoë"}}}},
			[]string{`response[0].add.value: "Zoë" is not printable ASCII, which a key without the -bin suffix needs`}},
		{"non-ASCII default", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Claim: "sub", Default: "\x7f"}}}},
			[]string{`request[0].set.default: "\x7f" is not printable ASCII, which a key without the -bin suffix needs`}},
		{"default of a literal", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Value: "v", Default: "d"}}}},
			[]string{`request[0].set.default: a literal value needs no default`}},
		{"no value", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a"}}}},
			[]string{`request[0].set: needs a value: one of value, claim, header, from`}},
		{"two values", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Add: &metadata.HeaderValue{Key: "x-a", Value: "v", Claim: "sub"}}}},
			[]string{`request[0].add: has value and claim; choose one`}},
		{"unknown from", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", From: "host"}}}},
			[]string{`request[0].set.from: "host" is not one of peer, authority, method`}},
		{"bad source header", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Header: ":authority"}}}},
			[]string{`request[0].set.header: ":authority" may only hold lowercase letters, digits, '-', '_' and '.'`}},
		{"uppercase source header", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Header: "X-Src"}}}},
			[]string{`request[0].set.header: "X-Src" must be lowercase`}},
		{"no operation", metadata.HeadersConfig{Request: []metadata.HeaderOp{{}}},
			[]string{`request[0]: needs one of add, set, remove, rename`}},
		{"two operations", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "x-a", Value: "v"}, Remove: &metadata.HeaderRemove{Key: "x-a"}}}},
			[]string{`request[0]: has set and remove; one operation per entry`}},
		{"rename to reserved", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-a", To: "grpc-encoding"}}}},
			[]string{`request[0].rename.to: "grpc-encoding" is reserved`}},
		{"rename from hop-by-hop", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "te", To: "x-te"}}}},
			[]string{`request[0].rename.key: "te" is a hop-by-hop header`}},
		{"rename without to", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-a"}}}},
			[]string{`request[0].rename.to: must not be empty`}},
		{"rename to itself", metadata.HeadersConfig{Request: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-a", To: "x-a"}}}},
			[]string{`request[0].rename.to: "x-a" is the key itself`}},
		{"rename binary to text", metadata.HeadersConfig{Response: []metadata.HeaderOp{{Rename: &metadata.HeaderRename{Key: "x-a-bin", To: "x-a"}}}},
			[]string{`response[0].rename.to: "x-a" is a text header; values of the binary "x-a-bin" cannot move there`}},
		{"every problem at once", metadata.HeadersConfig{
			Request:  []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "Grpc-Timeout"}}},
			Response: set(":status"),
			Trailers: []metadata.HeaderOp{{}, {Remove: &metadata.HeaderRemove{Key: "grpc-status-details-bin"}}},
		}, []string{
			`request[0].set.key: "Grpc-Timeout" must be lowercase`,
			`request[0].set: needs a value: one of value, claim, header, from`,
			`response[0].set.key: ":status" is a pseudo-header`,
			`trailers[0]: needs one of add, set, remove, rename`,
			`trailers[1].remove.key: "grpc-status-details-bin" is reserved`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				if _, err := metadata.NewHeaders(tt.cfg); err != nil {
					t.Fatalf("NewHeaders() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.want)
			}
			if got := strings.Split(err.Error(), "\n"); !equalLines(got, tt.want) {
				t.Errorf("Validate() =\n%s\nwant\n%s", err, strings.Join(tt.want, "\n"))
			}
			_, nerr := metadata.NewHeaders(tt.cfg)
			if nerr == nil || nerr.Error() != "headers: "+err.Error() {
				t.Errorf("NewHeaders() = %v, want the Validate error prefixed with \"headers: \"", nerr)
			}
		})
	}
}

func equalLines(a, b []string) bool {
	return strings.Join(a, "\n") == strings.Join(b, "\n")
}

// TestHeadersRegistry: config files reach the filter by the name "headers";
// the registry's config builds a working filter with the server's logger.
func TestHeadersRegistry(t *testing.T) {
	t.Parallel()
	mod, ok := pipeline.Lookup("headers")
	if !ok {
		t.Fatal(`pipeline.Lookup("headers"): not registered`)
	}
	cfg, ok := mod.New().(*metadata.HeadersConfig)
	if !ok {
		t.Fatalf("New() = %T, want *metadata.HeadersConfig", mod.New())
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("the empty config: %v", err)
	}

	cfg.Request = []metadata.HeaderOp{{Set: &metadata.HeaderValue{Key: "grpc-timeout", Value: "1S"}}}
	if err := cfg.Validate(); err == nil {
		t.Fatal("Validate accepted grpc-timeout")
	}
	if _, err := cfg.Build(pipeline.BuildEnv{}); err == nil || !strings.Contains(err.Error(), `request[0].set.key: "grpc-timeout" is reserved`) {
		t.Fatalf("Build of a bad config = %v, want the validation error", err)
	}

	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Request = []metadata.HeaderOp{
		{Set: &metadata.HeaderValue{Key: "x-env", Value: "prod"}},
		{Set: &metadata.HeaderValue{Key: "x-user", Claim: "name"}},
	}
	f, err := cfg.Build(pipeline.BuildEnv{Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "headers" {
		t.Errorf("Name() = %q, want headers", f.Name())
	}
	call := &pipeline.Call{Method: "/p.S/M", Header: grpcmd.MD{}}
	pipeline.ClaimsKey.Set(call, pipeline.Claims{"name": "Zoë"})
	out, _, _ := serve(t, []pipeline.Filter{f}, call, nil, nil)
	expect(t, "outbound", out, "x-env", "prod")
	expect(t, "outbound", out, "x-user")
	// The dropped value is logged at debug level through env.Logger,
	// without the value itself.
	if got := logs.String(); !strings.Contains(got, "level=DEBUG") || !strings.Contains(got, "key=x-user") || strings.Contains(got, "Zo") {
		t.Errorf("log = %q, want one debug record naming key x-user but not the value", got)
	}
}

// TestWithName: the name option names the filter.
func TestWithName(t *testing.T) {
	t.Parallel()
	f := newHeaders(t, metadata.HeadersConfig{}, metadata.WithName("tenant-headers"))
	if f.Name() != "tenant-headers" {
		t.Errorf("Name() = %q, want tenant-headers", f.Name())
	}
	_, err := metadata.NewHeaders(metadata.HeadersConfig{Request: []metadata.HeaderOp{{}}}, metadata.WithName("tenant-headers"))
	if err == nil || !strings.HasPrefix(err.Error(), "tenant-headers: request[0]:") {
		t.Errorf("NewHeaders error = %v, want it to start with the filter's name", err)
	}
}
