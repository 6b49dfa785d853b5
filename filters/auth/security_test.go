package auth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

const (
	// unaryMethod is the test backend's unary method.
	unaryMethod = "/grpc.testing.TestService/UnaryCall"
	// rsaOnlyMethod is served by a rule that accepts the RSA provider only.
	rsaOnlyMethod = "/only.Rsa/Call"
)

// securityFilter trusts the static providers and a JWKS provider whose
// server publishes the RSA key as kid "k1"; rsaOnlyMethod accepts only the
// RSA provider.
func securityFilter(t testing.TB, opts ...auth.Option) *auth.Filter {
	t.Helper()
	srv := startJWKS(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &keys().rsa.PublicKey})
	return newFilter(t, auth.Config{
		Providers:     append(staticProviders(t), jwksProvider(srv)),
		Rules:         []auth.Rule{{Methods: []string{"/only.Rsa/*"}, Providers: []string{"rsa"}}},
		ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
	}, append(opts, auth.WithHTTPClient(srv.Client()))...)
}

// securityCase is an attack, or a broken token, and exactly how the filter
// must answer it.
type securityCase struct {
	name   string
	method string   // default unaryMethod
	values []string // authorization values
	code   codes.Code
	msg    string
}

// securityCases builds the attacks. Each one is refused before the call
// goes upstream.
func securityCases(t testing.TB) []securityCase {
	k := keys()
	valid := rsaToken(t)
	parts := strings.Split(valid, ".")

	// The payload of a valid token, with sub changed to admin.
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	c["sub"] = "admin"
	forged, _ := json.Marshal(c)
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2]

	// The signature of a valid token with one byte flipped.
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	sig[len(sig)/2] ^= 0x01
	tamperedSig := parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(sig)

	// A genuine, well-signed token that is too large.
	oversized := rsaToken(t, "pad", strings.Repeat("a", auth.MaxTokenSize))

	// crit names an extension the filter does not understand.
	critTok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims(rsaIssuer))
	critTok.Header["crit"] = []string{"exp"}
	crit, err := critTok.SignedString(k.rsa)
	if err != nil {
		t.Fatal(err)
	}

	// Tokens whose "alg" the jwt library does not know, or that have none.
	rawToken := func(header string, c jwt.MapClaims) string {
		payload, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(header)) + "." + enc(payload) + "." + enc([]byte("signature"))
	}

	bearer := func(tok string) []string { return []string{"Bearer " + tok} }
	unauth := codes.Unauthenticated
	return []securityCase{
		{name: "alg none",
			values: bearer(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(rsaIssuer), "")),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "alg none on single-provider rule", method: rsaOnlyMethod,
			values: bearer(sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(rsaIssuer), "")),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "HS256 signed with the RSA public key PEM (algorithm confusion)",
			values: bearer(sign(t, jwt.SigningMethodHS256, publicPEM(t, &k.rsa.PublicKey), claims(rsaIssuer), "")),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "HS256 signed with the RSA public key PEM against the JWKS provider",
			values: bearer(sign(t, jwt.SigningMethodHS256, publicPEM(t, &k.rsa.PublicKey), claims(jwksIssuer), "k1")),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "unknown alg",
			values: bearer(rawToken(`{"alg":"XS999","typ":"JWT"}`, claims(rsaIssuer))),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "no alg",
			values: bearer(rawToken(`{"typ":"JWT"}`, claims(rsaIssuer))),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "unknown alg, wrong issuer",
			values: bearer(rawToken(`{"alg":"XS999","typ":"JWT"}`, claims("https://evil.test/"))),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "unknown alg, issuer of a provider the rule does not allow", method: rsaOnlyMethod,
			values: bearer(rawToken(`{"alg":"XS999","typ":"JWT"}`, claims(ecIssuer))),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "header not JSON",
			values: bearer(rawToken(`{"alg":`, claims(rsaIssuer))),
			code:   unauth, msg: "auth: malformed token"},
		{name: "RS384 not pinned",
			values: bearer(sign(t, jwt.SigningMethodRS384, k.rsa, claims(rsaIssuer), "")),
			code:   unauth, msg: "auth: algorithm not allowed"},
		{name: "wrong issuer",
			values: bearer(sign(t, jwt.SigningMethodRS256, k.rsa, claims("https://evil.test/"), "")),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "wrong issuer on single-provider rule", method: rsaOnlyMethod,
			values: bearer(sign(t, jwt.SigningMethodRS256, k.rsa, claims("https://evil.test/"), "")),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "issuer of a provider the rule does not allow", method: rsaOnlyMethod,
			values: bearer(sign(t, jwt.SigningMethodES256, k.ec, claims(ecIssuer), "")),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "no issuer", method: rsaOnlyMethod,
			values: bearer(rsaToken(t, "iss", nil)),
			code:   unauth, msg: "auth: wrong issuer"},
		{name: "wrong audience",
			values: bearer(rsaToken(t, "aud", "someone-else")),
			code:   unauth, msg: "auth: wrong audience"},
		{name: "no audience",
			values: bearer(rsaToken(t, "aud", nil)),
			code:   unauth, msg: "auth: wrong audience"},
		{name: "expired",
			values: bearer(rsaToken(t, "exp", time.Now().Add(-time.Minute).Unix())),
			code:   unauth, msg: "auth: token expired"},
		{name: "nbf in the future",
			values: bearer(rsaToken(t, "nbf", time.Now().Add(time.Hour).Unix())),
			code:   unauth, msg: "auth: token not yet valid"},
		{name: "no exp",
			values: bearer(rsaToken(t, "exp", nil)),
			code:   unauth, msg: "auth: token has no exp"},
		{name: "exp not a number",
			values: bearer(rsaToken(t, "exp", "tomorrow")),
			code:   unauth, msg: "auth: invalid claims"},
		{name: "unknown kid",
			values: bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "nope")),
			code:   unauth, msg: "auth: unknown signing key"},
		{name: "known kid, other key",
			values: bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "k1")),
			code:   unauth, msg: "auth: bad signature"},
		{name: "tampered payload",
			values: bearer(tamperedPayload),
			code:   unauth, msg: "auth: bad signature"},
		{name: "tampered signature",
			values: bearer(tamperedSig),
			code:   unauth, msg: "auth: bad signature"},
		{name: "signed by another key",
			values: bearer(sign(t, jwt.SigningMethodRS256, k.rsa2, claims(rsaIssuer), "")),
			code:   unauth, msg: "auth: bad signature"},
		{name: "empty bearer",
			values: []string{"Bearer "},
			code:   unauth, msg: "auth: empty bearer token"},
		{name: "bearer without token",
			values: []string{"Bearer"},
			code:   unauth, msg: "auth: empty bearer token"},
		{name: "two authorization values",
			values: []string{"Bearer " + valid, "Bearer " + valid},
			code:   unauth, msg: "auth: more than one token header"},
		{name: "oversized token",
			values: bearer(oversized),
			code:   unauth, msg: "auth: token too large"},
		{name: "not bearer",
			values: []string{"Basic YWxpY2U6c2VjcmV0"},
			code:   unauth, msg: "auth: not a bearer token"},
		{name: "malformed",
			values: bearer("not.a.token"),
			code:   unauth, msg: "auth: malformed token"},
		{name: "unsupported crit header",
			values: bearer(crit),
			code:   unauth, msg: "auth: unsupported critical header"},
		{name: "missing",
			code: unauth, msg: "auth: token missing"},
	}
}

func (c securityCase) md() metadata.MD {
	md := metadata.MD{}
	if len(c.values) > 0 {
		md["authorization"] = c.values
	}
	return md
}

func (c securityCase) fullMethod() string {
	if c.method == "" {
		return unaryMethod
	}
	return c.method
}

// TestSecurityUnit runs every attack against the filter alone: each gets
// its exact code and message, no claims are stored, and the token never
// appears in the message.
func TestSecurityUnit(t *testing.T) {
	t.Parallel()
	f := securityFilter(t)
	for _, tc := range securityCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			call := newCall(tc.fullMethod(), tc.md())
			err := f.OnRequestHeaders(context.Background(), call)
			requireCode(t, err, tc.code, tc.msg)
			if _, ok := pipeline.ClaimsKey.Get(call); ok {
				t.Error("claims stored for a refused token")
			}
		})
	}
}

// TestSecurityEndToEnd sends every attack through a proxy whose chain is
// the auth filter: the client gets the exact code and message, and the
// backend is never called.
func TestSecurityEndToEnd(t *testing.T) {
	t.Parallel()
	var calls atomic.Int32
	addr, _ := testbackend.Start(t, &testbackend.Service{
		Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			calls.Add(1)
			return &testpb.SimpleResponse{}, nil
		},
	})
	f := securityFilter(t)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{f}})
	for _, tc := range securityCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ctx = metadata.NewOutgoingContext(ctx, tc.md())
			err := env.ProxyConn.Invoke(ctx, tc.fullMethod(), &testpb.SimpleRequest{}, &testpb.SimpleResponse{})
			requireCode(t, err, tc.code, tc.msg)
		})
	}
	t.Cleanup(func() {
		if n := calls.Load(); n != 0 {
			t.Errorf("backend handled %d calls, want 0", n)
		}
	})
}
