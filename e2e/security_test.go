package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/testbackend"
)

// TestNoUnlistedAddressReachable: whatever a client puts in a call —
// forwarding headers, an :authority override, a fan-out nodes header
// naming an address, an address inside the method name — the proxy never
// connects to an address its config does not list. The unlisted backend
// listens on loopback the whole time and counts every TCP connection it
// accepts: it must accept none but the test's own control connection.
func TestNoUnlistedAddressReachable(t *testing.T) {
	t.Parallel()
	listed := startBackend(t, &testbackend.Service{})
	member := startBackend(t, &testbackend.Service{})
	unlisted := startBackend(t, &testbackend.Service{})
	u := unlisted.addr
	p := startProxy(t, `
listeners: [{address: 127.0.0.1:0}]
clusters: [{name: backend, `+target(listed.addr)+`}]
fanout:
  - name: group
    members: [{name: a, `+target(member.addr)+`}]
    kinds: [{match: /grpc.testing.TestService/UnaryCall, kind: unary}]
    reflection: false
routes:
  - name: fan
    match: {metadata: {x-fan: "1"}}
    fanout: group
  - name: all
    route: backend
`)
	cc := dial(t, p.addr)
	mustWork(t, cc)

	for _, tc := range []struct {
		name   string
		conn   *grpc.ClientConn // default cc
		method string           // default unaryMethod
		md     []string
		code   codes.Code
		msg    string
	}{
		{name: "x-forwarded-host", md: []string{"x-forwarded-host", u}},
		{name: "forwarded", md: []string{"forwarded", "host=" + u + ";proto=http"}},
		{name: "host", md: []string{"host", u}},
		{name: "x-original-host", md: []string{"x-original-host", u, "x-envoy-original-dst-host", u}},
		{name: "target headers", md: []string{"x-target", "passthrough:///" + u, "x-upstream", u, "x-manifold-cluster", u}},
		{name: "authority override", conn: dial(t, p.addr, grpc.WithAuthority(u))},
		{name: "nodes address", md: []string{"x-fan", "1", "nodes", u}, code: codes.InvalidArgument, msg: u},
		{name: "nodes member and address", md: []string{"x-fan", "1", "nodes", "a," + u}, code: codes.InvalidArgument, msg: u},
		{name: "nodes target URI", md: []string{"x-fan", "1", "nodes", "passthrough:///" + u}, code: codes.InvalidArgument},
		{name: "nodes dns URI", md: []string{"x-fan", "1", "nodes", "dns:///" + u}, code: codes.InvalidArgument},
		{name: "address as service", method: "/" + u + "/x", code: codes.Unimplemented},
		{name: "address before method", method: "/" + u + unaryMethod, code: codes.Unimplemented, msg: "malformed method name"},
		{name: "target URI as method", method: "passthrough:///" + u, code: codes.Unimplemented, msg: "malformed method name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, method := tc.conn, tc.method
			if conn == nil {
				conn = cc
			}
			if method == "" {
				method = unaryMethod
			}
			ctx := metadata.AppendToOutgoingContext(t.Context(), tc.md...)
			err := conn.Invoke(ctx, method, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{})
			if s := status.Convert(err); s.Code() != tc.code || !strings.Contains(s.Message(), tc.msg) {
				t.Errorf("got %v; want %v with %q", err, tc.code, tc.msg)
			}
		})
	}
	// The same over a raw HTTP/2 connection, :authority set to the
	// unlisted address.
	raw := dialRaw(t, p.addr)
	pairs := grpcHeaders(unaryMethod)
	pairs[7] = u // the :authority value
	id := raw.request(pairs, false)
	raw.data(id, true, grpcFrame(false, 0, nil))
	if res := raw.result(id); res.grpcStatus != "0" {
		t.Errorf(":authority %s: %v; want the listed backend's OK", u, res)
	}

	// Control: a connection the test makes itself is accepted and counted.
	// Accepting is first in, first out, so any connection the proxy had
	// made is counted by now too.
	c, err := net.Dial("tcp", u)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, "the unlisted backend counts the control connection", func() bool { return unlisted.accepted.Load() >= 1 })
	if n := unlisted.accepted.Load() - 1; n != 0 {
		t.Errorf("the unlisted backend accepted %d connections besides the control", n)
	}
	if listed.calls.Load() < 7 {
		t.Errorf("the listed backend served %d calls; the forwarding-header cases should have reached it", listed.calls.Load())
	}
}

// TestAdminNotOnProxyPort: the admin endpoints (/healthz, /readyz,
// /config, /metrics, POST /reload) answer on the admin listener only.
// HTTP/1.1 and h2c requests for them on the gRPC listener, and gRPC calls
// to them as methods, get no admin answer, and POST /reload there reloads
// nothing.
func TestAdminNotOnProxyPort(t *testing.T) {
	t.Parallel()
	be := startBackend(t, &testbackend.Service{})
	cfg := writeFile(t, "manifold.yaml", "admin: {address: 127.0.0.1:0}\n"+oneToOne(target(be.addr)))
	m := runManifold(t, "--config", cfg)
	if m.admin == "" {
		t.Fatalf("no admin address in the logs:\n%s", m.logs.String())
	}
	paths := []string{"/healthz", "/readyz", "/config", "/metrics"}
	// Markers of each admin answer.
	markers := []string{"ok\n", "ready", "listeners", "clusters", "# HELP", "# TYPE", "reloaded"}
	adminAnswer := func(code int, body string) bool {
		if code == http.StatusOK {
			return true
		}
		for _, mk := range markers {
			if strings.Contains(body, mk) {
				return true
			}
		}
		return false
	}

	h1 := httpClient(t, func(p *http.Protocols) { p.SetHTTP1(true) })
	h2c := httpClient(t, func(p *http.Protocols) { p.SetUnencryptedHTTP2(true) })
	// Control: the admin listener answers each path with 200 (readiness
	// once the cluster has connected).
	cc := dial(t, m.addr)
	mustWork(t, cc)
	for _, path := range paths {
		eventually(t, "admin "+path+" answers 200", func() bool {
			code, _, err := fetch(h1, "GET", "http://"+m.admin+path)
			return err == nil && code == http.StatusOK
		})
	}

	for _, req := range append(paths, "POST /reload") {
		method, path := "GET", req
		if m, p, ok := strings.Cut(req, " "); ok {
			method, path = m, p
		}
		// HTTP/1.1, by hand: net/http's client would log the server's
		// HTTP/2 SETTINGS as an unsolicited response.
		c, err := net.Dial("tcp", m.addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(c, method+" "+path+" HTTP/1.1\r\nHost: "+m.addr+"\r\nContent-Length: 0\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := string(readUntilClosed(t, c)); strings.HasPrefix(got, "HTTP/1.1 200") || adminAnswer(0, got) {
			t.Errorf("HTTP/1.1 %s %s on the gRPC port: admin answer %q", method, path, truncate(got, 200))
		}
		_ = c.Close()
		code, body, err := fetch(h2c, method, "http://"+m.addr+path)
		if err == nil && adminAnswer(code, body) {
			t.Errorf("h2c %s %s on the gRPC port: admin answer %d %q", method, path, code, truncate(body, 200))
		}
	}
	for _, path := range append(paths, "/reload") {
		err := cc.Invoke(t.Context(), path, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{})
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("gRPC call %s: %v; want UNIMPLEMENTED", path, err)
		}
	}
	if strings.Contains(m.logs.String(), "config reloaded") {
		t.Errorf("a request on the gRPC port reloaded the config:\n%s", m.logs.String())
	}
	// Control: the reload log line looked for above is the real one.
	if code, body, err := fetch(h1, "POST", "http://"+m.admin+"/reload"); err != nil || code != http.StatusOK {
		t.Fatalf("admin reload: %d %q %v", code, body, err)
	}
	if !strings.Contains(m.logs.String(), "config reloaded") {
		t.Errorf("no reload log line after an admin reload:\n%s", m.logs.String())
	}
	mustWork(t, cc)
}

// httpClient is a client speaking only the protocols set, closed when the
// test ends.
func httpClient(t *testing.T, set func(*http.Protocols)) *http.Client {
	t.Helper()
	var protos http.Protocols
	set(&protos)
	tr := &http.Transport{Protocols: &protos}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: guard}
}

// fetch makes one request and returns the status and body.
func fetch(c *http.Client, method, url string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestSecretsNeverInLogs: a config-mode proxy (manifold.Run, its whole log
// output captured) with the access log outermost and the auth filter
// verifying HS256 tokens with a secret from a file, logging at debug level
// in text and JSON. After calls with a valid token, a token signed with
// another key, an expired token, a token of another issuer, an unsigned
// ("none") token, a malformed one and one far too large, the logs hold the
// calls' records but neither the secret, nor any token or part of one, nor
// the "eyJ" that starts every JWT's base64 JSON.
func TestSecretsNeverInLogs(t *testing.T) {
	t.Parallel()
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			t.Parallel()
			secret := randomHex(t, 32)
			other := randomHex(t, 32)
			be := startBackend(t, &testbackend.Service{})
			cfg := writeFile(t, "manifold.yaml", `
listeners: [{address: 127.0.0.1:0}]
log: {level: debug, format: `+format+`}
clusters: [{name: backend, `+target(be.addr)+`}]
filters:
  - logging: {headers: [x-request-id]}
  - auth:
      providers:
        - {name: p, issuer: e2e.test, algorithms: [HS256], hmac_secret_file: `+writeFile(t, "hmac.secret", secret+"\n")+`}
      forward_claims: {sub: x-jwt-sub}
routes: [{name: all, route: backend}]
`)
			m := runManifold(t, "--config", cfg)
			cc := dial(t, m.addr)

			now := time.Now()
			claims := func(iss string, exp time.Time) jwt.MapClaims {
				return jwt.MapClaims{"iss": iss, "sub": "alice", "exp": exp.Unix(), "iat": now.Unix()}
			}
			valid := sign(t, jwt.SigningMethodHS256, claims("e2e.test", now.Add(time.Hour)), []byte(secret))
			none, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims("e2e.test", now.Add(time.Hour))).SignedString(jwt.UnsafeAllowNoneSignatureType)
			if err != nil {
				t.Fatal(err)
			}
			tokens := []struct {
				name, value string
				code        codes.Code
			}{
				{"valid", valid, codes.OK},
				{"valid, scheme upper-case", valid, codes.OK},
				{"other key", sign(t, jwt.SigningMethodHS256, claims("e2e.test", now.Add(time.Hour)), []byte(other)), codes.Unauthenticated},
				{"expired", sign(t, jwt.SigningMethodHS256, claims("e2e.test", now.Add(-time.Hour)), []byte(secret)), codes.Unauthenticated},
				{"other issuer", sign(t, jwt.SigningMethodHS256, claims("evil.test", now.Add(time.Hour)), []byte(secret)), codes.Unauthenticated},
				{"none", none, codes.Unauthenticated},
				{"malformed", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJtYWxsb3J5In0.c2lnbmF0dXJl-" + randomHex(t, 8), codes.Unauthenticated},
				{"huge", valid + strings.Repeat("A", 9<<10), codes.Unauthenticated},
			}
			for i, tok := range tokens {
				scheme := "Bearer "
				if i == 1 {
					scheme = "BEARER "
				}
				ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", scheme+tok.value, "x-request-id", "req-"+itoa(i))
				err := cc.Invoke(ctx, unaryMethod, &testgrpc.SimpleRequest{}, &testgrpc.SimpleResponse{})
				if status.Code(err) != tok.code {
					t.Errorf("%s token: %v; want %v", tok.name, err, tok.code)
				}
			}
			// A call without a token, and a stream with a valid one.
			if err := unary(cc, "x"); status.Code(err) != codes.Unauthenticated {
				t.Errorf("no token: %v; want UNAUTHENTICATED", err)
			}
			ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+valid)
			s, err := testgrpc.NewTestServiceClient(cc).FullDuplexCall(ctx)
			if err == nil {
				err = s.Send(&testgrpc.StreamingOutputCallRequest{})
			}
			if err == nil {
				_, err = s.Recv()
			}
			if err == nil {
				err = s.CloseSend()
			}
			if err == nil {
				if _, err = s.Recv(); err == io.EOF {
					err = nil
				}
			}
			if err != nil {
				t.Errorf("stream with a valid token: %v", err)
			}

			// Stop the proxy so that every record is written.
			if code := m.stop(); code != 0 {
				t.Fatalf("manifold exited with %d", code)
			}
			logs := m.logs.String()
			// Control: the records are there, with their outcomes.
			if n := strings.Count(logs, "finished call"); n < len(tokens)+2 {
				t.Errorf("%d access log records, want at least %d:\n%s", n, len(tokens)+2, logs)
			}
			for _, want := range []string{"Unauthenticated", "req-0", "req-2"} {
				if !strings.Contains(logs, want) {
					t.Errorf("the logs lack %q:\n%s", want, logs)
				}
			}
			forbidden := []string{secret, "eyJ"}
			for _, tok := range tokens {
				forbidden = append(forbidden, tok.value)
				for _, part := range strings.Split(tok.value, ".") {
					if len(part) >= 16 {
						forbidden = append(forbidden, part)
					}
				}
			}
			for _, f := range forbidden {
				if strings.Contains(logs, f) {
					t.Errorf("the logs contain %q:\n%s", truncate(f, 40), logs)
				}
			}
		})
	}
}

func sign(t *testing.T, method jwt.SigningMethod, claims jwt.MapClaims, key []byte) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}
