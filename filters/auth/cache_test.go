package auth_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// testClock is a clock tests set by hand.
type testClock struct{ ns atomic.Int64 }

func newTestClock(t time.Time) *testClock {
	c := &testClock{}
	c.set(t)
	return c
}

func (c *testClock) now() time.Time  { return time.Unix(0, c.ns.Load()) }
func (c *testClock) set(t time.Time) { c.ns.Store(t.UnixNano()) }

// verifyCounter counts the filter's full verifications: a call with a
// token that does not add one was served by the cache.
type verifyCounter struct{ n atomic.Int64 }

func (c *verifyCounter) option() auth.Option { return auth.WithVerifyHook(func() { c.n.Add(1) }) }
func (c *verifyCounter) load() int64         { return c.n.Load() }

// hmacToken is a valid HS256 token of the HMAC provider.
func hmacToken(t testing.TB, extra ...any) string {
	return sign(t, jwt.SigningMethodHS256, keys().hmac, claims(hmacIssuer, extra...), "")
}

// authCall runs f on a call of method with token, and returns the call.
func authCall(t testing.TB, f *auth.Filter, method, token string) (*pipeline.Call, error) {
	t.Helper()
	call := newCall(method, bearerMD(token))
	return call, f.OnRequestHeaders(context.Background(), call)
}

// TestCacheHit serves a token sent again from the cache: it is verified
// once, yet every call gets the claims and the forwarded headers, and the
// rule's required claims are checked on every call.
func TestCacheHit(t *testing.T) {
	t.Parallel()
	var verified verifyCounter
	f := newFilter(t, auth.Config{
		Providers:     staticProviders(t),
		Rules:         []auth.Rule{{Methods: []string{"/admin.Svc/*"}, Claims: map[string]string{"scope": "admin"}}},
		ForwardClaims: map[string]string{"sub": "x-jwt-sub", "groups": "x-jwt-groups"},
	}, verified.option())
	tok := hmacToken(t, "scope", "read", "groups", []string{"dev", "ops"})

	for i := range 3 {
		call, err := authCall(t, f, unaryMethod, tok)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		if c, ok := pipeline.ClaimsKey.Get(call); !ok || c.Subject() != "alice" {
			t.Errorf("call %d: claims %v (set %v), want sub alice", i, c, ok)
		}
		if got := call.Header["x-jwt-sub"]; !slices.Equal(got, []string{"alice"}) {
			t.Errorf("call %d: x-jwt-sub %q", i, got)
		}
		if got := call.Header["x-jwt-groups"]; !slices.Equal(got, []string{"dev,ops"}) {
			t.Errorf("call %d: x-jwt-groups %q", i, got)
		}
	}
	if n := verified.load(); n != 1 {
		t.Errorf("%d verifications for 3 calls with one token, want 1", n)
	}
	if n := auth.CacheLen(f); n != 1 {
		t.Errorf("cache holds %d tokens, want 1", n)
	}

	// A remembered token still lacks the scope a rule requires.
	for range 2 {
		call, err := authCall(t, f, "/admin.Svc/M", tok)
		requireCode(t, err, codes.PermissionDenied, `auth: claim "scope" lacks a required value`)
		if _, ok := pipeline.ClaimsKey.Get(call); ok {
			t.Error("claims stored for a denied call")
		}
	}
	if n := verified.load(); n != 1 {
		t.Errorf("%d verifications, want still 1", n)
	}

	// Another token is verified once too.
	admin := hmacToken(t, "scope", "read admin")
	for range 2 {
		if _, err := authCall(t, f, "/admin.Svc/M", admin); err != nil {
			t.Fatal(err)
		}
	}
	if n := verified.load(); n != 2 {
		t.Errorf("%d verifications for two tokens, want 2", n)
	}
}

// TestCacheTimes checks that a remembered token is refused from the very
// instant it would be without the cache, by the filter's clock and the
// provider's leeway: after "exp", and, should the clock go back, before
// "nbf" or (with check_iat) "iat". A refused entry is dropped.
func TestCacheTimes(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	const leeway = 30 * time.Second
	at := func(d time.Duration) int64 { return t0.Add(d).Unix() }
	tests := []struct {
		name     string
		checkIat bool
		extra    []any         // the token's times
		then     time.Duration // the second call, after t0
		msg      string        // "" for OK
	}{
		{"before exp", false, []any{"exp", at(time.Minute)}, 0, ""},
		{"exp, last instant of leeway", false, []any{"exp", at(time.Minute)}, time.Minute + leeway - time.Nanosecond, ""},
		{"exp, leeway over", false, []any{"exp", at(time.Minute)}, time.Minute + leeway, "auth: token expired"},
		{"exp, long after", false, []any{"exp", at(time.Minute)}, time.Hour, "auth: token expired"},
		{"nbf, first instant of leeway", false, []any{"nbf", at(0), "exp", at(time.Hour)}, -leeway, ""},
		{"nbf, before leeway", false, []any{"nbf", at(0), "exp", at(time.Hour)}, -leeway - time.Nanosecond, "auth: token not yet valid"},
		{"iat unchecked", false, []any{"iat", at(0), "exp", at(time.Hour)}, -time.Hour, ""},
		{"iat, first instant of leeway", true, []any{"iat", at(0), "exp", at(time.Hour)}, -leeway, ""},
		{"iat, before leeway", true, []any{"iat", at(0), "exp", at(time.Hour)}, -leeway - time.Nanosecond, "auth: token issued in the future"},
		{"nbf later than iat", true, []any{"iat", at(-time.Minute), "nbf", at(0), "exp", at(time.Hour)}, -leeway - time.Nanosecond, "auth: token not yet valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := newTestClock(t0)
			var verified verifyCounter
			p := staticProviders(t)[3]
			p.Leeway = leeway
			p.CheckIssuedAt = tt.checkIat
			f := newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithClock(clock.now), verified.option())
			tok := hmacToken(t, append([]any{"iat", nil}, tt.extra...)...)

			if _, err := authCall(t, f, unaryMethod, tok); err != nil {
				t.Fatalf("at t0: %v", err)
			}
			clock.set(t0.Add(tt.then))
			_, err := authCall(t, f, unaryMethod, tok)
			if tt.msg == "" {
				if err != nil {
					t.Fatalf("at t0%+v: %v", tt.then, err)
				}
				if n := verified.load(); n != 1 {
					t.Errorf("%d verifications, want 1 (a cache hit)", n)
				}
				return
			}
			requireCode(t, err, codes.Unauthenticated, tt.msg)
			if n := auth.CacheLen(f); n != 0 {
				t.Errorf("cache holds %d tokens after the refusal, want 0", n)
			}
			// At t0 again, it is verified and remembered again.
			clock.set(t0)
			if _, err := authCall(t, f, unaryMethod, tok); err != nil {
				t.Fatalf("at t0 again: %v", err)
			}
			if n := auth.CacheLen(f); n != 1 {
				t.Errorf("cache holds %d tokens, want 1", n)
			}
		})
	}
}

// TestCacheProviders never lets a token remembered for one provider pass a
// rule that accepts only another, whichever call comes first; the entry
// still serves the rules that accept its provider.
func TestCacheProviders(t *testing.T) {
	t.Parallel()
	k := keys()
	ecTok := sign(t, jwt.SigningMethodES256, k.ec, claims(ecIssuer), "")
	for _, first := range []string{unaryMethod, rsaOnlyMethod} {
		t.Run("first "+first, func(t *testing.T) {
			t.Parallel()
			var verified verifyCounter
			f := newFilter(t, auth.Config{
				Providers: staticProviders(t),
				Rules:     []auth.Rule{{Methods: []string{"/only.Rsa/*"}, Providers: []string{"rsa"}}},
			}, verified.option())
			for _, method := range []string{first, unaryMethod, rsaOnlyMethod, unaryMethod, rsaOnlyMethod} {
				call, err := authCall(t, f, method, ecTok)
				if method == rsaOnlyMethod {
					requireCode(t, err, codes.Unauthenticated, "auth: wrong issuer")
					if _, ok := pipeline.ClaimsKey.Get(call); ok {
						t.Error("claims stored for a refused token")
					}
				} else if err != nil {
					t.Fatalf("%s: %v", method, err)
				}
			}
			// The fallback verifies once; each refusal is a verification.
			want := int64(3)
			if first == rsaOnlyMethod {
				want = 4
			}
			if n := verified.load(); n != want {
				t.Errorf("%d verifications, want %d", n, want)
			}
			if n := auth.CacheLen(f); n != 1 {
				t.Errorf("cache holds %d tokens, want 1", n)
			}
		})
	}
}

// TestCacheJWKSRotation drops what a JWKS URL's keys verified once the URL
// publishes a changed key set, whether the fetch comes from an unknown kid
// or from the periodic refresh; a fetch of the same keys keeps it.
func TestCacheJWKSRotation(t *testing.T) {
	t.Parallel()
	k := keys()
	k1 := jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey}
	k2 := jwk{kid: "k2", alg: jwkset.AlgRS256, key: &k.rsa2.PublicKey}
	k1Reused := jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa2.PublicKey} // another key, same kid
	old := sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwksIssuer), "k1")

	t.Run("unknown kid", func(t *testing.T) {
		t.Parallel()
		tests := []struct {
			name     string
			keys     []jwk // published after old is remembered
			msg      string
			verified int64 // in all, when old passes
		}{
			// old, the unknown kid; old is remembered still.
			{"same keys", []jwk{k1}, "", 2},
			// old, the unknown kid, old again: any change of the
			// set counts.
			{"key added", []jwk{k1, k2}, "", 3},
			{"key withdrawn", []jwk{k2}, "auth: unknown signing key", 0},
			{"kid reused for another key", []jwk{k1Reused}, "auth: bad signature", 0},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				srv := startJWKS(t, k1)
				p := jwksProvider(srv)
				p.RefreshInterval = time.Hour
				p.UnknownKIDRefreshInterval = time.Millisecond
				var verified verifyCounter
				f := newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()), verified.option())
				for range 2 {
					if _, err := authCall(t, f, unaryMethod, old); err != nil {
						t.Fatal(err)
					}
				}
				if n := verified.load(); n != 1 {
					t.Fatalf("%d verifications before rotation, want 1", n)
				}

				srv.setKeys(t, tt.keys...)
				fetches := srv.fetches.Load()
				_, err := authCall(t, f, unaryMethod, sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "k9"))
				requireCode(t, err, codes.Unauthenticated, "auth: unknown signing key")
				if srv.fetches.Load() == fetches {
					t.Fatal("the unknown kid fetched nothing")
				}

				_, err = authCall(t, f, unaryMethod, old)
				if tt.msg == "" {
					if err != nil {
						t.Fatal(err)
					}
					if n := verified.load(); n != tt.verified {
						t.Errorf("%d verifications, want %d", n, tt.verified)
					}
					return
				}
				requireCode(t, err, codes.Unauthenticated, tt.msg)
			})
		}
	})

	t.Run("periodic refresh", func(t *testing.T) {
		t.Parallel()
		srv := startJWKS(t, k1)
		p := jwksProvider(srv)
		p.RefreshInterval = 10 * time.Millisecond
		p.UnknownKIDRefreshInterval = time.Hour // only the periodic refresh fetches
		f := newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()))
		if _, err := authCall(t, f, unaryMethod, old); err != nil {
			t.Fatal(err)
		}
		srv.setKeys(t, k1Reused)
		eventually(t, "the old token refused", func() bool {
			_, err := authCall(t, f, unaryMethod, old)
			return err != nil
		})
		_, err := authCall(t, f, unaryMethod, old)
		requireCode(t, err, codes.Unauthenticated, "auth: bad signature")
	})
}

// TestCacheBounded never holds more than cache_size tokens, evicting the
// least recently used; the default size is DefaultCacheSize.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	t.Run("LRU", func(t *testing.T) {
		t.Parallel()
		var verified verifyCounter
		f := newFilter(t, auth.Config{Providers: staticProviders(t), CacheSize: 3}, verified.option())
		toks := make([]string, 10)
		for i := range toks {
			toks[i] = hmacToken(t, "jti", fmt.Sprint(i))
			if _, err := authCall(t, f, unaryMethod, toks[i]); err != nil {
				t.Fatal(err)
			}
			if n := auth.CacheLen(f); n > 3 {
				t.Fatalf("cache holds %d tokens, over cache_size 3", n)
			}
		}
		check := func(tok string, hit bool) {
			t.Helper()
			before := verified.load()
			if _, err := authCall(t, f, unaryMethod, tok); err != nil {
				t.Fatal(err)
			}
			if got := verified.load() == before; got != hit {
				t.Errorf("hit %v, want %v", got, hit)
			}
		}
		// Remembered, most recent first: 9 8 7.
		check(toks[7], true)  // 7 9 8
		check(toks[0], false) // 0 7 9
		check(toks[9], true)  // 9 0 7
		check(toks[8], false) // 8 9 0
		check(toks[7], false) // 7 8 9
		if n := auth.CacheLen(f); n != 3 {
			t.Errorf("cache holds %d tokens, want 3", n)
		}
	})
	t.Run("default", func(t *testing.T) {
		t.Parallel()
		f := newFilter(t, auth.Config{Providers: staticProviders(t)})
		for i := range auth.DefaultCacheSize + 10 {
			if _, err := authCall(t, f, unaryMethod, hmacToken(t, "jti", fmt.Sprint(i))); err != nil {
				t.Fatal(err)
			}
		}
		if n := auth.CacheLen(f); n != auth.DefaultCacheSize {
			t.Errorf("cache holds %d tokens, want %d", n, auth.DefaultCacheSize)
		}
	})
}

// TestCacheOff verifies every call when cache_size is -1, with the same
// answers.
func TestCacheOff(t *testing.T) {
	t.Parallel()
	var verified verifyCounter
	f := newFilter(t, auth.Config{Providers: staticProviders(t), CacheSize: -1, ForwardClaims: map[string]string{"sub": "x-jwt-sub"}},
		verified.option())
	tok := hmacToken(t)
	for i := range 3 {
		call, err := authCall(t, f, unaryMethod, tok)
		if err != nil {
			t.Fatal(err)
		}
		if got := call.Header["x-jwt-sub"]; !slices.Equal(got, []string{"alice"}) {
			t.Errorf("call %d: x-jwt-sub %q", i, got)
		}
	}
	_, err := authCall(t, f, unaryMethod, hmacToken(t, "exp", time.Now().Add(-time.Hour).Unix()))
	requireCode(t, err, codes.Unauthenticated, "auth: token expired")
	if n := verified.load(); n != 4 {
		t.Errorf("%d verifications for 4 calls, want 4", n)
	}
	if n := auth.CacheLen(f); n != 0 {
		t.Errorf("cache holds %d tokens, want 0", n)
	}
}

// TestCacheRefusals remembers no refused token: each is verified, and
// refused the same way, on every call, and a token refused for want of its
// key passes once the key is published.
func TestCacheRefusals(t *testing.T) {
	t.Parallel()
	var verified verifyCounter
	f := securityFilter(t, verified.option())
	var calls int64
	for _, tc := range securityCases(t) {
		switch tc.msg {
		case "auth: token missing", "auth: more than one token header", "auth: not a bearer token",
			"auth: empty bearer token", "auth: token too large":
			continue // refused before verification
		}
		for range 2 {
			err := f.OnRequestHeaders(context.Background(), newCall(tc.fullMethod(), tc.md()))
			requireCode(t, err, tc.code, tc.msg)
			calls++
		}
	}
	if n := verified.load(); n != calls {
		t.Errorf("%d verifications for %d calls with refused tokens, want one each", n, calls)
	}
	if n := auth.CacheLen(f); n != 0 {
		t.Errorf("cache holds %d refused tokens", n)
	}

	k := keys()
	srv := startJWKS(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey})
	p := jwksProvider(srv)
	p.UnknownKIDRefreshInterval = time.Millisecond
	f = newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()))
	tok := sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "k2")
	_, err := authCall(t, f, unaryMethod, tok)
	requireCode(t, err, codes.Unauthenticated, "auth: unknown signing key")
	srv.setKeys(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey}, jwk{kid: "k2", alg: jwkset.AlgRS256, key: &k.rsa2.PublicKey})
	if _, err := authCall(t, f, unaryMethod, tok); err != nil {
		t.Fatalf("after k2 was published: %v", err)
	}
}

// TestCacheConcurrent runs many calls at once on a small cache, with
// tokens that pass, fail, or pass only some rules: every answer is the one
// a lone call gets, and the cache stays within its size (run with -race).
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	clock := newTestClock(time.Now())
	f := newFilter(t, auth.Config{
		Providers: staticProviders(t),
		Rules: []auth.Rule{
			{Methods: []string{"/only.Rsa/*"}, Providers: []string{"rsa"}},
			{Methods: []string{"/admin.Svc/*"}, Claims: map[string]string{"scope": "admin"}},
		},
		ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
		CacheSize:     4,
	}, auth.WithClock(clock.now))
	k := keys()
	type want struct {
		code codes.Code
		msg  string
	}
	ok := want{codes.OK, ""}
	type tokenCase struct {
		token string
		by    map[string]want // by method
	}
	var cases []tokenCase
	for i := range 6 {
		tok := hmacToken(t, "jti", fmt.Sprint(i), "scope", "read")
		cases = append(cases, tokenCase{tok, map[string]want{
			unaryMethod:    ok,
			rsaOnlyMethod:  {codes.Unauthenticated, "auth: wrong issuer"},
			"/admin.Svc/M": {codes.PermissionDenied, `auth: claim "scope" lacks a required value`},
		}})
	}
	rsaAdmin := sign(t, jwt.SigningMethodRS256, k.rsa, claims(rsaIssuer, "scope", "admin"), "")
	cases = append(cases, tokenCase{rsaAdmin, map[string]want{unaryMethod: ok, rsaOnlyMethod: ok, "/admin.Svc/M": ok}})
	expired := hmacToken(t, "exp", time.Now().Add(-time.Hour).Unix())
	cases = append(cases, tokenCase{expired, map[string]want{
		unaryMethod:    {codes.Unauthenticated, "auth: token expired"},
		rsaOnlyMethod:  {codes.Unauthenticated, "auth: wrong issuer"},
		"/admin.Svc/M": {codes.Unauthenticated, "auth: token expired"},
	}})
	methods := []string{unaryMethod, rsaOnlyMethod, "/admin.Svc/M"}

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 300 {
				tc := cases[(g*7+i)%len(cases)]
				method := methods[(g+i)%len(methods)]
				call, err := authCall(t, f, method, tc.token)
				w := tc.by[method]
				if st := status.Convert(err); st.Code() != w.code || st.Message() != w.msg {
					errs <- fmt.Errorf("%s, token %d: %v, want %v %q", method, (g*7+i)%len(cases), err, w.code, w.msg)
					return
				}
				if w.code == codes.OK {
					if got := call.Header["x-jwt-sub"]; !slices.Equal(got, []string{"alice"}) {
						errs <- fmt.Errorf("x-jwt-sub %q", got)
						return
					}
				}
				if n := auth.CacheLen(f); n > 4 {
					errs <- fmt.Errorf("cache holds %d tokens, over 4", n)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
