package auth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testpki"
	"github.com/manifold-grpc/manifold/pipeline"
)

// testKeys are generated once per test binary: RSA generation is slow.
type testKeys struct {
	rsa, rsa2 *rsa.PrivateKey
	ec        *ecdsa.PrivateKey
	ed        ed25519.PrivateKey
	hmac      []byte
}

var keys = sync.OnceValue(func() *testKeys {
	k := &testKeys{hmac: []byte("0123456789abcdef0123456789abcdef-test-secret")}
	var err error
	if k.rsa, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
		panic(err)
	}
	if _, k.ed, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
	return k
})

// Issuers and audience of the test providers.
const (
	rsaIssuer  = "https://rsa.test/"
	ecIssuer   = "https://ec.test/"
	edIssuer   = "https://ed.test/"
	hmacIssuer = "hmac.test"
	jwksIssuer = "https://jwks.test/"
	audience   = "api.test"
)

// publicPEM encodes a public key as a PKIX "PUBLIC KEY" block.
func publicPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// certPEM encodes a certificate of priv's public key.
func certPEM(t testing.TB, priv *ecdsa.PrivateKey) []byte {
	t.Helper()
	return testpki.CertPEM(testpki.NewCA(t, "ca").Client(t, "ec.test", testpki.Key(priv)).Leaf)
}

// writeFile writes data to a new file in the test's temp dir.
func writeFile(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// claims returns valid claims for iss: audience, subject "alice", issued
// now, expiring in an hour; extra entries are added or, when nil, removed.
func claims(iss string, extra ...any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{
		"iss": iss,
		"aud": audience,
		"sub": "alice",
		"iat": now.Unix(),
		"exp": now.Add(time.Hour).Unix(),
	}
	for i := 0; i+1 < len(extra); i += 2 {
		k := extra[i].(string)
		if extra[i+1] == nil {
			delete(c, k)
			continue
		}
		c[k] = extra[i+1]
	}
	return c
}

// sign signs claims with method and key; kid, when set, goes in the
// header.
func sign(t testing.TB, method jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rsaToken is a valid RS256 token of the RSA provider.
func rsaToken(t testing.TB, extra ...any) string {
	return sign(t, jwt.SigningMethodRS256, keys().rsa, claims(rsaIssuer, extra...), "")
}

// newCall is a call to method with the given request metadata, as the
// server would make it.
func newCall(method string, md metadata.MD) *pipeline.Call {
	if md == nil {
		md = metadata.MD{}
	}
	return &pipeline.Call{Method: method, Inbound: md, Header: pipeline.OutboundHeader(md)}
}

// bearerMD is request metadata with "authorization: Bearer <token>".
func bearerMD(token string) metadata.MD {
	return metadata.Pairs("authorization", "Bearer "+token)
}

// requireCode fails unless err has the code and message.
func requireCode(t testing.TB, err error, code codes.Code, msg string) {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v has no status", err)
	}
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("got %v %q, want %v %q", st.Code(), st.Message(), code, msg)
	}
}

// newFilter builds a filter closed when the test ends.
func newFilter(t testing.TB, cfg auth.Config, opts ...auth.Option) *auth.Filter {
	t.Helper()
	f, err := auth.New(cfg, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// staticProviders are one provider per key kind, keys from files.
func staticProviders(t testing.TB) []auth.Provider {
	k := keys()
	return []auth.Provider{{
		Name:       "rsa",
		Issuer:     rsaIssuer,
		Audiences:  []string{"other.test", audience},
		Algorithms: []string{"RS256", "PS256"},
		PEMFiles:   []string{writeFile(t, "rsa.pem", publicPEM(t, &k.rsa.PublicKey))},
	}, {
		Name:       "ec",
		Issuer:     ecIssuer,
		Audiences:  []string{audience},
		Algorithms: []string{"ES256"},
		PEMFiles:   []string{writeFile(t, "ec.pem", certPEM(t, k.ec))},
	}, {
		Name:       "ed",
		Issuer:     edIssuer,
		Audiences:  []string{audience},
		Algorithms: []string{"EdDSA"},
		PEMFiles:   []string{writeFile(t, "ed.pem", publicPEM(t, k.ed.Public()))},
	}, {
		Name:           "hmac",
		Issuer:         hmacIssuer,
		Audiences:      []string{audience},
		Algorithms:     []string{"HS256"},
		HMACSecretFile: writeFile(t, "secret", append(append([]byte(nil), k.hmac...), '\n')),
	}}
}

// jwk is one key of a test JWKS.
type jwk struct {
	kid string
	alg jwkset.ALG
	key any // public key
}

// jwksJSON encodes a JWKS.
func jwksJSON(t testing.TB, ks ...jwk) []byte {
	t.Helper()
	set := jwkset.NewMemoryStorage()
	for _, k := range ks {
		j, err := jwkset.NewJWKFromKey(k.key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: k.kid, ALG: k.alg}})
		if err != nil {
			t.Fatal(err)
		}
		if err := set.KeyWrite(context.Background(), j); err != nil {
			t.Fatal(err)
		}
	}
	data, err := set.JSONPublic(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// jwksServer serves a JWKS on loopback that tests change while it runs.
type jwksServer struct {
	*httptest.Server
	fetches atomic.Int32

	mu   sync.Mutex
	body []byte
	down bool
}

// startJWKS serves ks until the test ends.
func startJWKS(t testing.TB, ks ...jwk) *jwksServer {
	t.Helper()
	s := &jwksServer{body: jwksJSON(t, ks...)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, down := s.body, s.down
		s.mu.Unlock()
		if down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) setKeys(t testing.TB, ks ...jwk) {
	body := jwksJSON(t, ks...)
	s.mu.Lock()
	s.body = body
	s.mu.Unlock()
}

func (s *jwksServer) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// jwksProvider trusts s's keys for RS256 tokens of jwksIssuer.
func jwksProvider(s *jwksServer) auth.Provider {
	return auth.Provider{
		Name:       "jwks",
		Issuer:     jwksIssuer,
		Audiences:  []string{audience},
		Algorithms: []string{"RS256", "ES256"},
		JWKSURL:    s.URL + "/jwks.json",
	}
}

// logBuffer is a concurrency-safe log sink.
type logBuffer struct{ proxytest.SyncBuffer }

// lines counts the log records that contain s.
func (b *logBuffer) lines(s string) int {
	n := 0
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, s) {
			n++
		}
	}
	return n
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond until it holds or 5s passed.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
