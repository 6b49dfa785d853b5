package config_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/config"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tagConfig is a user's own filter, registered by name like a built-in.
type tagConfig struct {
	// Key and Value are the request header the filter sets.
	Key   string        `yaml:"key"`
	Value string        `yaml:"value"`
	Delay time.Duration `yaml:"delay"`
}

func (c *tagConfig) Validate() error {
	var errs []error
	if c.Key == "" {
		errs = append(errs, errors.New("key: required"))
	}
	if c.Delay < 0 {
		errs = append(errs, errors.New("delay: must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *tagConfig) Build(pipeline.BuildEnv) (pipeline.Filter, error) {
	return pipeline.RequestHeadersFunc("tag", func(_ context.Context, call *pipeline.Call) error {
		call.Header.Append(c.Key, c.Value)
		return nil
	}), nil
}

func init() {
	pipeline.Register(pipeline.Module{Name: "test.tag", New: func() pipeline.FilterConfig { return new(tagConfig) }})
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
}

// TestBrokenFiles: every error names the file, line and column and the field
// path, unknown fields are errors, and all errors come together.
func TestBrokenFiles(t *testing.T) {
	const head = "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\n"
	cases := []struct {
		name, file string
		want       []string
	}{
		{"unknown top-level field", head + "routez: []\nroutes: [{name: r, route: c}]\n",
			[]string{"m.yaml:3:1: routez: unknown field"}},
		{"typo in a route", head + "routes:\n  - name: r\n    rout: c\n",
			[]string{"m.yaml:5:5: routes[0].rout: unknown field", "m.yaml:4:5: routes[0]: one of route"}},
		{"unknown cluster", head + "routes:\n  - name: r\n    route: nope\n",
			[]string{`m.yaml:5:12: routes[0].route: no cluster named "nope"`}},
		{"unknown filter", head + "filters:\n  - nosuch: {}\nroutes: [{name: r, route: c}]\n",
			[]string{`m.yaml:4:5: filters[0]: unknown filter "nosuch"`}},
		{"filter field typo", head + "filters:\n  - test.tag: {kee: x}\nroutes: [{name: r, route: c}]\n",
			[]string{"m.yaml:4:16: filters[0].test.tag.kee: unknown field (known: delay, key, value)"}},
		{"filter validation", head + "routes:\n  - name: r\n    route: c\n    filters:\n      - test.tag:\n          value: v\n          delay: -1s\n",
			[]string{"m.yaml:8:11: routes[0].filters[0].test.tag.key: required", "m.yaml:9:18: routes[0].filters[0].test.tag.delay: must not be negative"}},
		{"bad duration", head + "drain_timeout: soon\nroutes: [{name: r, route: c}]\n",
			[]string{"m.yaml:3:16: drain_timeout:"}},
		{"bad policy", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    policy: most\n    members: [{name: a, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g}]\n",
			[]string{"m.yaml:4:13: fanout[0].policy:", "most"}},
		{"bad kind", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    kinds: [{match: /a.B/*, kind: sometimes}]\n    members: [{name: a, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g}]\n",
			[]string{"fanout[0].kinds[0].kind:"}},
		{"bad cluster kinds", "listeners: [{address: 127.0.0.1:0}]\nclusters:\n  - name: c\n    target: a:1\n    kinds: [{match: /a.B/*, kind: sometimes}, {match: nope, kind: unary}]\n    protoset: /nonexistent.protoset\nroutes: [{name: r, route: c}]\n",
			[]string{"clusters[0].kinds[0].kind:", `clusters[0].kinds[1]: match "nope" must start with`, "m.yaml:6:15: clusters[0].protoset:"}},
		{"bad match", head + "routes:\n  - name: r\n    route: c\n    match: {method: NoSlash}\n",
			[]string{"m.yaml:6:21: routes[0].match.method:"}},
		{"unset env", head + "routes: [{name: r, route: c, match: {authority: \"${HOST}\"}}]\n",
			[]string{"m.yaml:3:49: routes[0].match.authority: environment variable HOST is not set"}},
		{"no listeners no routes", "clusters: []\n",
			[]string{"listeners: at least one listener is required", "routes: at least one route is required"}},
		{"duplicate names", "listeners: [{address: 127.0.0.1:0}]\nclusters:\n  - {name: c, target: a:1}\n  - {name: c, target: a:2}\nroutes: [{name: r, route: c}, {name: r, route: c}]\n",
			[]string{`m.yaml:4:12: clusters[1].name: "c" is used twice`, `routes[1].name: "r" is used twice`}},
		{"bad yaml", "listeners: [\n", []string{"m.yaml:"}},
		{"bad lb policy", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1, load_balancing: fastest}]\nroutes: [{name: r, route: c}]\n",
			[]string{`m.yaml:2:51: clusters[0].load_balancing: unknown policy "fastest"`}},
		{"member name with a space", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    members: [{name: a b, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g}]\n",
			[]string{`m.yaml:4:22: fanout[0].members[0].name: "a b" must not contain commas or spaces`}},
		{"bad layout", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    layout: {hostname_field: 2, error_field: 2}\n    members: [{name: a, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g}]\n",
			[]string{"fanout[0].layout."}},
		{"wrong shape", "listeners: {address: x}\n", []string{"m.yaml:1:12: listeners: want a list"}},
		{"missing tls files", "listeners: [{address: 127.0.0.1:0, tls: {cert_file: /nonexistent.pem}}]\nclusters: [{name: c, target: a:1}]\nroutes: [{name: r, route: c}]\n",
			[]string{"listeners[0].tls.cert_file:", "listeners[0].tls.key_file: required"}},
	}
	cases = append(cases, []struct {
		name, file string
		want       []string
	}{
		{"listener limits and tls versions", "listeners:\n  - address: 127.0.0.1:0\n    max_header_list_size: 100\n    tls: {cert_file: /nonexistent.pem, key_file: /nonexistent.key, min_version: \"1.1\", client_auth: optional}\nclusters: [{name: c, target: a:1}]\nroutes: [{name: r, route: c}]\n",
			[]string{"m.yaml:3:27: listeners[0].max_header_list_size: 100 bytes is too small", "listeners[0].tls.min_version: TLS version 1.1 is not allowed", "listeners[0].tls.client_auth: needs client_ca_file"}},
		{"unknown client_auth", "listeners: [{address: 127.0.0.1:0, tls: {cert_file: a, key_file: b, client_ca_file: c, client_auth: sometimes}}]\nclusters: [{name: c, target: a:1}]\nroutes: [{name: r, route: c}]\n",
			[]string{`listeners[0].tls.client_auth: "sometimes" is not require or optional`}},
		{"bad retry policy", head[:len(head)-len("clusters: [{name: c, target: 127.0.0.1:1}]\n")] + "clusters:\n  - name: c\n    target: a:1\n    retry:\n      - methods: [pkg.Svc]\n        max_attempts: 9\nroutes: [{name: r, route: c}]\n",
			[]string{"m.yaml:7:23: clusters[0].retry[0].max_attempts:"}},
		{"scheme not built in", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: \"xds:///users\"}]\nfanout: [{name: g, members: [{name: a, target: \"consul://x/y\"}]}]\nroutes: [{name: r, route: c}]\n",
			[]string{`m.yaml:2:30: clusters[0].target: scheme "xds": no resolver for it in this binary (build the binary with -tags xds`, `fanout[0].members[0].target: scheme "consul"`}},
		{"negative breaker", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1, circuit_breakers: {max_requests: -1}}]\nroutes: [{name: r, route: c}]\n",
			[]string{"clusters[0].circuit_breakers.max_requests:"}},
	}...)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("m.yaml", []byte(tc.file), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestEnvNumbers: a plain ${VAR} is read as what it expands to, so it can
// fill number and boolean fields; a quoted one stays a string.
func TestEnvNumbers(t *testing.T) {
	file := "listeners:\n  - address: 127.0.0.1:0\n    max_message_size: ${MAX:-1048576}\n    forwarded_for: ${XFF}\nclusters: [{name: c, target: \"${T}\"}]\nroutes: [{name: r, route: c}]\n"
	cfg, err := config.Parse("m.yaml", []byte(file), env(map[string]string{"XFF": "false", "T": "127.0.0.1:1"}))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if l.MaxMessageSize != 1048576 || l.ForwardedFor == nil || *l.ForwardedFor {
		t.Errorf("listener = %+v", l)
	}
}

// TestBuildAndServe: a config with a global filter, a user's filter from
// the registry, two routes to two clusters, and env expansion serves calls.
func TestBuildAndServe(t *testing.T) {
	seen := make(chan metadata.MD, 4)
	svc := &testbackend.Service{Unary: func(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		seen <- md
		return &testgrpc.SimpleResponse{}, nil
	}}
	a, _ := testbackend.Start(t, svc)
	file := `
listeners:
  - address: 127.0.0.1:0
drain_timeout: 2s
clusters:
  - name: backend
    target: passthrough:///${BACKEND}
filters:
  - test.tag: {key: x-global, value: "${TAG:-yes}"}
routes:
  - name: tests
    match: {service: grpc.testing.TestService}
    filters:
      - test.tag: {key: x-route, value: tests}
    route: backend
`
	cfg, err := config.Parse("m.yaml", []byte(file), env(map[string]string{"BACKEND": a}))
	if err != nil {
		t.Fatal(err)
	}
	addr := serveProxy(t, cfg)
	conn := proxytest.Dial(t, addr)
	if _, err := testgrpc.NewTestServiceClient(conn).UnaryCall(context.Background(), &testgrpc.SimpleRequest{}); err != nil {
		t.Fatal(err)
	}
	md := <-seen
	if md.Get("x-global")[0] != "yes" || md.Get("x-route")[0] != "tests" {
		t.Errorf("backend saw %v", md)
	}
	if _, err := testgrpc.NewUnimplementedServiceClient(conn).UnimplementedCall(context.Background(), &testgrpc.Empty{}); err == nil || !strings.Contains(err.Error(), "no route") {
		t.Errorf("unrouted call: %v", err)
	}
}

// TestSourceRedacted: /config shows the file without secrets: environment
// values are never expanded in it, and literal values of secret-looking
// fields and header operations are replaced.
func TestSourceRedacted(t *testing.T) {
	file := `listeners: [{address: 127.0.0.1:0}]
clusters: [{name: c, target: "${TARGET:-127.0.0.1:1}"}]
filters:
  - headers:
      request:
        - set: {key: authorization, value: "Bearer s3cr3t-literal"}
        - set: {key: x-tier, value: gold}
routes: [{name: r, route: c}]
`
	cfg, err := config.Parse("m.yaml", []byte(file), env(map[string]string{"TARGET": "10.9.8.7:1"}))
	if err != nil {
		t.Fatal(err)
	}
	src := string(cfg.Source)
	for _, bad := range []string{"s3cr3t-literal", "10.9.8.7"} {
		if strings.Contains(src, bad) {
			t.Errorf("Source shows %q:\n%s", bad, src)
		}
	}
	for _, good := range []string{"${TARGET:-127.0.0.1:1}", "gold", "<redacted>"} {
		if !strings.Contains(src, good) {
			t.Errorf("Source lacks %q:\n%s", good, src)
		}
	}
}

// TestMoreBrokenFiles covers the decoding corners: empty filter entries,
// duplicate map keys, extra documents, environment reference syntax,
// impossible quorums.
func TestMoreBrokenFiles(t *testing.T) {
	const head = "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: 127.0.0.1:1}]\n"
	for _, tc := range []struct {
		name, file, want string
	}{
		{"empty filter", head + "filters:\n  - ~\nroutes: [{name: r, route: c}]\n", "m.yaml:4:5: filters[0]: want one filter name"},
		{"bare dash filter", head + "filters:\n  -\nroutes: [{name: r, route: c}]\n", "filters[0]: want one filter name"},
		{"duplicate map key", head + "routes: [{name: r, route: c, match: {metadata: {a: x, a: y}}}]\n", "routes[0].match.metadata.a: set twice"},
		{"second document", head + "routes: [{name: r, route: c}]\n---\nbogus: 1\n", "more than one YAML document"},
		{"nested default", head + "routes: [{name: r, route: c, match: {authority: \"${A:-${B}}\"}}]\n", "malformed environment reference"},
		{"malformed reference", head + "routes: [{name: r, route: c, match: {authority: \"${A-b}\"}}]\n", "malformed environment reference"},
		{"impossible quorum", "listeners: [{address: 127.0.0.1:0}]\nfanout:\n  - name: g\n    policy: quorum:3\n    members: [{name: a, target: 127.0.0.1:1}]\nroutes: [{name: r, fanout: g}]\n", "fanout[0].policy: quorum of 3 can never be reached with 1 members"},
		{"syntax error", "listeners: [\n  {address: x\n", "m.yaml:"},
		{"bad log level", head + "log: {level: loud}\nroutes: [{name: r, route: c}]\n", `m.yaml:3:14: log.level: "loud" is not debug`},
		{"short client keepalive", "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1, keepalive: {time: 1s}}]\nroutes: [{name: r, route: c}]\n", "clusters[0].keepalive.time: must be at least 10s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("m.yaml", []byte(tc.file), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
	cfg, err := config.Parse("m.yaml", []byte(head+"routes: [{name: r, route: c, match: {authority: \"$${NOT_A_VAR}\"}}]\n"), env(nil))
	if err != nil || cfg.Routes[0].Match.Authority != "${NOT_A_VAR}" {
		t.Errorf("escaped $${: %v %v", err, cfg)
	}
	cfg, err = config.Parse("m.yaml", []byte(head+"routes: [{name: r, route: c, match: {authority: \"${V}\"}}]\n"), env(map[string]string{"V": "a${b}"}))
	if err != nil || cfg.Routes[0].Match.Authority != "a${b}" {
		t.Errorf("a value containing ${: %v", err)
	}
}

// TestBuildReportsProtosetErrors: a protoset that cannot be read when the
// config is built (a Config made in Go, never validated) is an error, not a
// silently missing source of method kinds.
func TestBuildReportsProtosetErrors(t *testing.T) {
	cfg := &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0"}},
		Fanout:    []config.FanoutGroup{{Name: "g", Protoset: "/nonexistent.protoset", Members: []config.Member{{Name: "a", Target: "127.0.0.1:1"}}}},
		Routes:    []config.Route{{Name: "r", Fanout: "g"}},
	}
	if _, err := config.BuildRoutes(cfg, config.Options{}); err == nil || !strings.Contains(err.Error(), "nonexistent.protoset") {
		t.Errorf("BuildRoutes = %v, want the protoset's error", err)
	}
	cfg = &config.Config{
		Listeners: []config.Listener{{Address: "127.0.0.1:0"}},
		Clusters:  []config.Cluster{{Name: "c", Target: "127.0.0.1:1", Protoset: "/nonexistent.protoset"}},
		Routes:    []config.Route{{Name: "r", Route: "c"}},
	}
	if _, err := config.BuildRoutes(cfg, config.Options{}); err == nil || !strings.Contains(err.Error(), "nonexistent.protoset") {
		t.Errorf("BuildRoutes of a cluster = %v, want the protoset's error", err)
	}
}

// TestAliasBomb: nested aliases that expand a small file into millions of
// values ("billion laughs") end in one located error, quickly, instead of
// hanging the loader and eating memory.
func TestAliasBomb(t *testing.T) {
	const n = 160 // about 9 KB; expanded, billions of nodes
	items := strings.Repeat("{remove: {key: a}}, ", n-1) + "{remove: {key: a}}"
	uses := strings.Repeat("{headers: {request: *o}}, ", n-2) + "{headers: {request: *o}}"
	file := "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1}]\nroutes:\n" +
		"  - &r {name: r, route: c, filters: &f [{headers: {request: &o [" + items + "]}}, " + uses + "]}\n" +
		strings.Repeat("  - *r\n", n-1)
	_, err := config.Parse("m.yaml", []byte(file), env(nil))
	if err == nil || !strings.Contains(err.Error(), "aliases expand to too many values") {
		t.Fatalf("alias bomb: %v", err)
	}
	// A config that uses aliases reasonably still loads.
	ok := "listeners: [{address: 127.0.0.1:0}]\nclusters: [{name: c, target: a:1}]\n" +
		"x-common: &common [{headers: {request: [{set: {key: x-a, value: b}}]}}]\n"
	if _, err := config.Parse("m.yaml", []byte(ok+"routes: [{name: r, route: c, filters: *common}]\n"), env(nil)); err != nil && !strings.Contains(err.Error(), "x-common") {
		t.Fatalf("reasonable aliases: %v", err)
	}
}

// TestSyntaxErrorLines: yaml syntax errors point at a line, also on the
// first line and for an unknown anchor.
func TestSyntaxErrorLines(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"a: b: c\n", "m.yaml:1:0: "},
		{"\"\n", "m.yaml:2:0: found unexpected end of stream"},
		{"listeners: []\nroutes: *nowhere\n", "m.yaml:2:0: unknown anchor 'nowhere'"},
	} {
		_, err := config.Parse("m.yaml", []byte(tc.file), env(nil))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want an error starting %q", tc.file, err, tc.want)
		}
	}
}

// serveProxy builds cfg and serves its first listener on a loopback port
// until the test ends, then shuts it down and closes the proxy. It returns
// the listening address.
func serveProxy(t *testing.T, cfg *config.Config) string {
	t.Helper()
	p, err := config.Build(cfg, config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.Servers[0].Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Servers[0].Shutdown(ctx)
		_ = p.Close()
	})
	return lis.Addr().String()
}
