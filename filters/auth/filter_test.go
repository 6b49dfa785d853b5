package auth_test

import (
	"context"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// TestAcceptsValidTokens accepts a valid token of every algorithm family
// and key source: the call goes on, the claims are stored for later
// filters, the token is stripped and the subject forwarded.
func TestAcceptsValidTokens(t *testing.T) {
	t.Parallel()
	k := keys()
	srv := startJWKS(t,
		jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey},
		jwk{kid: "e1", alg: jwkset.AlgES256, key: &k.ec.PublicKey})
	jwksFile := auth.Provider{
		Name:       "jwks-file",
		Issuer:     "https://jwks-file.test/",
		Algorithms: []string{"EdDSA"},
		JWKSFile:   writeFile(t, "jwks.json", jwksJSON(t, jwk{kid: "d1", key: k.ed.Public()})),
	}
	f := newFilter(t, auth.Config{
		Providers:     append(staticProviders(t), jwksProvider(srv), jwksFile),
		ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
	}, auth.WithHTTPClient(srv.Client()))

	tests := []struct {
		name  string
		token string
	}{
		{"RS256 PEM", sign(t, jwt.SigningMethodRS256, k.rsa, claims(rsaIssuer), "")},
		{"PS256 PEM", sign(t, jwt.SigningMethodPS256, k.rsa, claims(rsaIssuer), "")},
		{"RS256 PEM, second audience", sign(t, jwt.SigningMethodRS256, k.rsa, claims(rsaIssuer, "aud", []string{"x", "other.test"}), "")},
		{"ES256 certificate", sign(t, jwt.SigningMethodES256, k.ec, claims(ecIssuer), "")},
		{"EdDSA PEM", sign(t, jwt.SigningMethodEdDSA, k.ed, claims(edIssuer), "")},
		{"HS256 secret file", sign(t, jwt.SigningMethodHS256, k.hmac, claims(hmacIssuer), "")},
		{"RS256 JWKS URL", sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwksIssuer), "k1")},
		{"ES256 JWKS URL", sign(t, jwt.SigningMethodES256, k.ec, claims(jwksIssuer), "e1")},
		{"JWKS URL, no kid", sign(t, jwt.SigningMethodES256, k.ec, claims(jwksIssuer), "")},
		{"EdDSA JWKS file", sign(t, jwt.SigningMethodEdDSA, k.ed, claims("https://jwks-file.test/", "aud", nil), "d1")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			call := newCall(unaryMethod, bearerMD(tt.token))
			if err := f.OnRequestHeaders(context.Background(), call); err != nil {
				t.Fatal(err)
			}
			c, ok := pipeline.ClaimsKey.Get(call)
			if !ok || c.Subject() != "alice" {
				t.Errorf("claims %v (set %v), want sub alice", c, ok)
			}
			if got := call.Header["x-jwt-sub"]; !slices.Equal(got, []string{"alice"}) {
				t.Errorf("x-jwt-sub %q, want [alice]", got)
			}
			if v, ok := call.Header["authorization"]; ok {
				t.Errorf("authorization %q forwarded, want stripped", v)
			}
		})
	}
}

// TestBearerScheme accepts the scheme in any case, and extra spaces before
// the token.
func TestBearerScheme(t *testing.T) {
	t.Parallel()
	f := newFilter(t, auth.Config{Providers: staticProviders(t)})
	tok := rsaToken(t)
	for _, v := range []string{"Bearer " + tok, "bearer " + tok, "BEARER " + tok, "BeArEr   " + tok} {
		call := newCall(unaryMethod, metadata.Pairs("authorization", v))
		if err := f.OnRequestHeaders(context.Background(), call); err != nil {
			t.Errorf("%.12s…: %v", v, err)
		}
	}
}

// TestCustomHeader reads the token from a configured header and strips
// that header; authorization is then left alone.
func TestCustomHeader(t *testing.T) {
	t.Parallel()
	f := newFilter(t, auth.Config{Providers: staticProviders(t), Header: "x-token"})
	md := metadata.Pairs("x-token", "Bearer "+rsaToken(t), "authorization", "Basic abc")
	call := newCall(unaryMethod, md)
	if err := f.OnRequestHeaders(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	if _, ok := call.Header["x-token"]; ok {
		t.Error("x-token forwarded, want stripped")
	}
	if got := call.Header["authorization"]; !slices.Equal(got, []string{"Basic abc"}) {
		t.Errorf("authorization %q, want kept", got)
	}
	err := f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(rsaToken(t))))
	requireCode(t, err, codes.Unauthenticated, "auth: token missing")
}

// TestRules checks the three actions, first-match order, the fallback for
// methods no rule matches, and rules limited to some providers.
func TestRules(t *testing.T) {
	t.Parallel()
	k := keys()
	f := newFilter(t, auth.Config{
		Providers: staticProviders(t),
		Rules: []auth.Rule{
			{Methods: []string{"/pub.Svc/*"}, Action: auth.Public},
			{Methods: []string{"/opt.Svc/*"}, Action: auth.AllowMissing},
			{Methods: []string{"/opt.Svc/Public"}, Action: auth.Public}, // shadowed by the rule above
			{Methods: []string{"/req.Svc/Exact"}, Action: auth.Require},
			{Methods: []string{"/ec.*", "/also.Ec/Call"}, Providers: []string{"ec"}},
		},
	})
	valid := rsaToken(t)
	invalid := rsaToken(t, "exp", time.Now().Add(-time.Hour).Unix())
	ecTok := sign(t, jwt.SigningMethodES256, k.ec, claims(ecIssuer), "")
	const none = ""
	tests := []struct {
		method, token string
		code          codes.Code
		msg           string
		claims        bool
	}{
		{"/pub.Svc/M", none, codes.OK, "", false},
		{"/pub.Svc/M", "garbage", codes.OK, "", false},
		{"/pub.Svc/M", valid, codes.OK, "", false}, // not even checked
		{"/opt.Svc/M", none, codes.OK, "", false},
		{"/opt.Svc/M", valid, codes.OK, "", true},
		{"/opt.Svc/M", invalid, codes.Unauthenticated, "auth: token expired", false},
		{"/opt.Svc/M", "garbage", codes.Unauthenticated, "auth: malformed token", false},
		{"/opt.Svc/Public", invalid, codes.Unauthenticated, "auth: token expired", false},
		{"/req.Svc/Exact", none, codes.Unauthenticated, "auth: token missing", false},
		{"/req.Svc/Exact", valid, codes.OK, "", true},
		{"/req.Svc/Exactly", none, codes.Unauthenticated, "auth: token missing", false}, // fallback
		{"/other.Svc/M", none, codes.Unauthenticated, "auth: token missing", false},     // fallback
		{"/other.Svc/M", ecTok, codes.OK, "", true},                                     // fallback: any provider
		{"/ec.v1.Svc/M", valid, codes.Unauthenticated, "auth: wrong issuer", false},
		{"/ec.v1.Svc/M", ecTok, codes.OK, "", true},
		{"/also.Ec/Call", valid, codes.Unauthenticated, "auth: wrong issuer", false},
	}
	for _, tt := range tests {
		md := metadata.MD{}
		if tt.token != none {
			md = bearerMD(tt.token)
		}
		call := newCall(tt.method, md)
		err := f.OnRequestHeaders(context.Background(), call)
		if tt.code == codes.OK {
			if err != nil {
				t.Errorf("%s with token %.10q: %v, want OK", tt.method, tt.token, err)
			}
		} else {
			requireCode(t, err, tt.code, tt.msg)
		}
		if _, ok := pipeline.ClaimsKey.Get(call); ok != tt.claims {
			t.Errorf("%s with token %.10q: claims set %v, want %v", tt.method, tt.token, ok, tt.claims)
		}
	}
}

// TestRequiredClaims answers PERMISSION_DENIED when a valid token lacks a
// required value: exact values, words of a space-separated scope, elements
// of a list, and formatted booleans and numbers.
func TestRequiredClaims(t *testing.T) {
	t.Parallel()
	f := newFilter(t, auth.Config{
		Providers: staticProviders(t),
		Rules: []auth.Rule{
			{Methods: []string{"/scope.Svc/*"}, Claims: map[string]string{"scope": "orders.write"}},
			{Methods: []string{"/roles.Svc/*"}, Claims: map[string]string{"roles": "admin"}},
			{Methods: []string{"/tenant.Svc/*"}, Claims: map[string]string{"tenant": "acme", "email_verified": "true", "level": "3"}},
		},
	})
	denied := func(claim string) string { return `auth: claim "` + claim + `" lacks a required value` }
	tests := []struct {
		name, method string
		extra        []any
		msg          string // "" for OK
	}{
		{"scope word", "/scope.Svc/M", []any{"scope", "openid orders.read orders.write"}, ""},
		{"scope exact", "/scope.Svc/M", []any{"scope", "orders.write"}, ""},
		{"scope list", "/scope.Svc/M", []any{"scope", []string{"orders.write"}}, ""},
		{"scope missing word", "/scope.Svc/M", []any{"scope", "openid orders.read"}, denied("scope")},
		{"scope prefix is not a word", "/scope.Svc/M", []any{"scope", "orders.writer"}, denied("scope")},
		{"no scope", "/scope.Svc/M", nil, denied("scope")},
		{"role in list", "/roles.Svc/M", []any{"roles", []string{"user", "admin"}}, ""},
		{"role not in list", "/roles.Svc/M", []any{"roles", []string{"user", "administrator"}}, denied("roles")},
		{"roles an object", "/roles.Svc/M", []any{"roles", map[string]any{"admin": true}}, denied("roles")},
		{"all exact", "/tenant.Svc/M", []any{"tenant", "acme", "email_verified", true, "level", 3}, ""},
		{"tenant differs", "/tenant.Svc/M", []any{"tenant", "acme-evil", "email_verified", true, "level", 3}, denied("tenant")},
		{"bool false", "/tenant.Svc/M", []any{"tenant", "acme", "email_verified", false, "level", 3}, denied("email_verified")},
		{"number differs", "/tenant.Svc/M", []any{"tenant", "acme", "email_verified", true, "level", 3.5}, denied("level")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			call := newCall(tt.method, bearerMD(rsaToken(t, tt.extra...)))
			err := f.OnRequestHeaders(context.Background(), call)
			if tt.msg == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			requireCode(t, err, codes.PermissionDenied, tt.msg)
			if _, ok := pipeline.ClaimsKey.Get(call); ok {
				t.Error("claims stored for a denied call")
			}
		})
	}

	// An invalid token on a route with required claims is UNAUTHENTICATED.
	err := f.OnRequestHeaders(context.Background(), newCall("/scope.Svc/M",
		bearerMD(rsaToken(t, "scope", "orders.write", "exp", time.Now().Add(-time.Hour).Unix()))))
	requireCode(t, err, codes.Unauthenticated, "auth: token expired")
}

// TestHeaders checks what goes upstream: claim headers a client sends are
// always removed, whatever the rule and the token, and only verified claims
// are forwarded; the token is stripped unless keep_token; the inbound view
// is never changed.
func TestHeaders(t *testing.T) {
	t.Parallel()
	rules := []auth.Rule{
		{Methods: []string{"/pub.Svc/*"}, Action: auth.Public},
		{Methods: []string{"/opt.Svc/*"}, Action: auth.AllowMissing},
	}
	forward := map[string]string{"sub": "x-jwt-sub", "groups": "x-jwt-groups", "name": "x-jwt-name", "exp": "x-jwt-exp"}
	strip := newFilter(t, auth.Config{Providers: staticProviders(t), Rules: rules, ForwardClaims: forward})
	keep := newFilter(t, auth.Config{Providers: staticProviders(t), Rules: rules, ForwardClaims: forward, KeepToken: true})

	exp := time.Now().Add(time.Hour).Unix()
	valid := rsaToken(t, "groups", []string{"dev", "ops"}, "name", "Jösé", "exp", exp)
	tests := []struct {
		name    string
		f       *auth.Filter
		method  string
		token   string
		wantErr bool
		want    metadata.MD // upstream headers of interest
	}{
		{name: "verified", f: strip, method: "/req.Svc/M", token: valid,
			want: metadata.MD{"x-jwt-sub": {"alice"}, "x-jwt-groups": {"dev,ops"}, "x-jwt-exp": {strconv.FormatInt(exp, 10)}}},
		{name: "verified, keep token", f: keep, method: "/req.Svc/M", token: valid,
			want: metadata.MD{"x-jwt-sub": {"alice"}, "x-jwt-groups": {"dev,ops"}, "x-jwt-exp": {strconv.FormatInt(exp, 10)}, "authorization": {"Bearer " + valid}}},
		{name: "public with token", f: strip, method: "/pub.Svc/M", token: valid, want: metadata.MD{}},
		{name: "public with token, keep token", f: keep, method: "/pub.Svc/M", token: valid,
			want: metadata.MD{"authorization": {"Bearer " + valid}}},
		{name: "public without token", f: strip, method: "/pub.Svc/M", want: metadata.MD{}},
		{name: "allow_missing without token", f: strip, method: "/opt.Svc/M", want: metadata.MD{}},
		{name: "refused", f: strip, method: "/req.Svc/M", token: "garbage", wantErr: true, want: metadata.MD{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md := metadata.Pairs("x-jwt-sub", "admin", "x-jwt-groups", "root", "x-jwt-name", "Admin", "x-other", "kept")
			if tt.token != "" {
				md.Set("authorization", "Bearer "+tt.token)
			}
			inbound := md.Copy()
			call := newCall(tt.method, md)
			err := tt.f.OnRequestHeaders(context.Background(), call)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			for _, key := range []string{"x-jwt-sub", "x-jwt-groups", "x-jwt-name", "x-jwt-exp", "authorization"} {
				if got, want := call.Header[key], tt.want[key]; !slices.Equal(got, want) {
					t.Errorf("upstream %s = %q, want %q", key, got, want)
				}
			}
			if got := call.Header["x-other"]; !slices.Equal(got, []string{"kept"}) {
				t.Errorf("upstream x-other = %q, want [kept]", got)
			}
			for key, v := range inbound {
				if !slices.Equal(call.Inbound[key], v) {
					t.Errorf("inbound %s changed to %q, want %q", key, call.Inbound[key], v)
				}
			}
		})
	}
}

// TestTimes checks leeway on exp and nbf and the optional iat check,
// against a fixed clock.
func TestTimes(t *testing.T) {
	t.Parallel()
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	ps := staticProviders(t)[:1]
	ps[0].Leeway = 30 * time.Second
	lenient := newFilter(t, auth.Config{Providers: ps}, auth.WithClock(func() time.Time { return now }))
	ps = staticProviders(t)[:1]
	ps[0].Leeway = 30 * time.Second
	ps[0].CheckIssuedAt = true
	strict := newFilter(t, auth.Config{Providers: ps}, auth.WithClock(func() time.Time { return now }))

	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	tests := []struct {
		name  string
		f     *auth.Filter
		extra []any
		msg   string // "" for OK
	}{
		{"exp within leeway", lenient, []any{"iat", at(-time.Hour), "exp", at(-10 * time.Second)}, ""},
		{"exp past leeway", lenient, []any{"iat", at(-time.Hour), "exp", at(-time.Minute)}, "auth: token expired"},
		{"nbf within leeway", lenient, []any{"iat", at(0), "exp", at(time.Hour), "nbf", at(10 * time.Second)}, ""},
		{"nbf past leeway", lenient, []any{"iat", at(0), "exp", at(time.Hour), "nbf", at(time.Minute)}, "auth: token not yet valid"},
		{"iat in the future, unchecked", lenient, []any{"iat", at(time.Minute), "exp", at(time.Hour)}, ""},
		{"iat in the future, checked", strict, []any{"iat", at(time.Minute), "exp", at(time.Hour)}, "auth: token issued in the future"},
		{"iat within leeway, checked", strict, []any{"iat", at(10 * time.Second), "exp", at(time.Hour)}, ""},
		{"no iat, checked", strict, []any{"iat", nil, "exp", at(time.Hour)}, ""},
	}
	for _, tt := range tests {
		err := tt.f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(rsaToken(t, tt.extra...))))
		if tt.msg == "" {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		requireCode(t, err, codes.Unauthenticated, tt.msg)
	}
}
