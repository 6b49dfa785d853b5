package auth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"

	"github.com/manifold-grpc/manifold/filters/auth"
)

// TestJWKSDownThenUp starts the filter while the JWKS server answers 503:
// the filter builds, fails closed (UNAUTHENTICATED through the proxy, the
// backend never called), logs the failure without the token, and reports
// it in Ready; once the server is up, the periodic refresh loads the keys
// and the same token is accepted.
func TestJWKSDownThenUp(t *testing.T) {
	t.Parallel()
	srv := startJWKS(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &keys().rsa.PublicKey})
	srv.setDown(true)
	p := jwksProvider(srv)
	p.RefreshInterval = 50 * time.Millisecond
	p.UnknownKIDRefreshInterval = time.Hour // only the periodic refresh may heal it
	logs := &logBuffer{}
	cfg := auth.Config{Providers: []auth.Provider{p}, ForwardClaims: map[string]string{"sub": "x-jwt-sub"}}
	f := newFilter(t, cfg, auth.WithHTTPClient(srv.Client()), auth.WithLogger(logs.logger()))
	e := startE2EWith(t, f)

	err := f.Ready()
	if err == nil || !strings.Contains(err.Error(), `provider "jwks"`) || !strings.Contains(err.Error(), "503") {
		t.Errorf("Ready() = %v, want the provider and the 503", err)
	}
	tok := sign(t, jwt.SigningMethodRS256, keys().rsa, claims(jwksIssuer), "k1")
	_, err = e.unary(t, bearerMD(tok))
	requireCode(t, err, codes.Unauthenticated, "auth: signing keys unavailable")
	if n := e.calls.Load(); n != 0 {
		t.Errorf("backend handled %d calls, want 0", n)
	}

	srv.setDown(false)
	eventually(t, "Ready", func() bool { return f.Ready() == nil })
	header, err := e.unary(t, bearerMD(tok))
	if err != nil {
		t.Fatalf("after the JWKS came up: %v", err)
	}
	requireSeen(t, header, "x-jwt-sub", "alice")

	if logs.lines("cannot fetch JWKS") == 0 {
		t.Error("the failed fetch was not logged")
	}
	if strings.Contains(logs.String(), tok) || strings.Contains(logs.String(), strings.Split(tok, ".")[2]) {
		t.Error("the log holds the token")
	}
}

// TestJWKSKeyRotation publishes a new key on the JWKS server: a token
// signed with it is accepted after the refresh its unknown kid triggers,
// while the old key still works; once the old key is withdrawn, its tokens
// are refused.
func TestJWKSKeyRotation(t *testing.T) {
	t.Parallel()
	k := keys()
	k1 := jwk{kid: "k1", alg: jwkset.AlgRS256, key: &k.rsa.PublicKey}
	k2 := jwk{kid: "k2", alg: jwkset.AlgRS256, key: &k.rsa2.PublicKey}
	srv := startJWKS(t, k1)
	p := jwksProvider(srv)
	p.RefreshInterval = time.Hour // only unknown kids refresh
	p.UnknownKIDRefreshInterval = time.Millisecond
	f := newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()))
	check := func(tok string, msg string) {
		t.Helper()
		err := f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(tok)))
		if msg == "" {
			if err != nil {
				t.Fatal(err)
			}
			return
		}
		requireCode(t, err, codes.Unauthenticated, msg)
	}
	old := sign(t, jwt.SigningMethodRS256, k.rsa, claims(jwksIssuer), "k1")
	rotated := sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "k2")

	check(old, "")
	if n := srv.fetches.Load(); n != 1 {
		t.Errorf("%d fetches before rotation, want 1", n)
	}
	srv.setKeys(t, k1, k2)
	check(rotated, "")
	check(old, "")
	if n := srv.fetches.Load(); n != 2 {
		t.Errorf("%d fetches after rotation, want 2 (one for the new kid)", n)
	}

	srv.setKeys(t, k2)
	check(sign(t, jwt.SigningMethodRS256, k.rsa2, claims(jwksIssuer), "k3"), "auth: unknown signing key")
	check(old, "auth: unknown signing key")
	check(rotated, "")
}

// TestJWKSUnknownKIDRateLimited sends many tokens with unknown kids at
// once: they are all refused promptly, and trigger at most one fetch.
func TestJWKSUnknownKIDRateLimited(t *testing.T) {
	t.Parallel()
	srv := startJWKS(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &keys().rsa.PublicKey})
	p := jwksProvider(srv)
	p.RefreshInterval = time.Hour
	p.UnknownKIDRefreshInterval = time.Hour
	f := newFilter(t, auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()))

	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		tok := sign(t, jwt.SigningMethodRS256, keys().rsa2, claims(jwksIssuer), fmt.Sprintf("random-%d", i))
		wg.Go(func() {
			errs[i] = f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(tok)))
		})
	}
	wg.Wait()
	for _, err := range errs {
		requireCode(t, err, codes.Unauthenticated, "auth: unknown signing key")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("refusing took %v", d)
	}
	if n := srv.fetches.Load(); n > 2 {
		t.Errorf("%d fetches, want at most 2 (start, one unknown kid)", n)
	}
}

// TestJWKSFailureLogging logs a JWKS that keeps failing at most once per
// refresh interval, by the filter's clock.
func TestJWKSFailureLogging(t *testing.T) {
	t.Parallel()
	srv := startJWKS(t)
	srv.setDown(true)
	p := jwksProvider(srv)
	p.RefreshInterval = 10 * time.Millisecond
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()) }
	logs := &logBuffer{}
	f := newFilter(t, auth.Config{Providers: []auth.Provider{p}},
		auth.WithHTTPClient(srv.Client()), auth.WithLogger(logs.logger()), auth.WithClock(clock))

	eventually(t, "5 fetches", func() bool { return srv.fetches.Load() >= 5 })
	if n := logs.lines("cannot fetch JWKS"); n != 1 {
		t.Errorf("%d log records within one interval, want 1:\n%s", n, logs)
	}
	now.Add(int64(p.RefreshInterval))
	seen := srv.fetches.Load()
	eventually(t, "3 more fetches", func() bool { return srv.fetches.Load() >= seen+3 })
	if n := logs.lines("cannot fetch JWKS"); n != 2 {
		t.Errorf("%d log records within two intervals, want 2:\n%s", n, logs)
	}
	if err := f.Ready(); err == nil {
		t.Error("Ready() = nil for a JWKS that never loaded")
	}
}

// TestJWKSEmpty reports a JWKS that answers with no key as not ready, and
// fails closed.
func TestJWKSEmpty(t *testing.T) {
	t.Parallel()
	srv := startJWKS(t)
	f := newFilter(t, auth.Config{Providers: []auth.Provider{jwksProvider(srv)}}, auth.WithHTTPClient(srv.Client()))
	if err := f.Ready(); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("Ready() = %v, want an empty key set", err)
	}
	tok := sign(t, jwt.SigningMethodRS256, keys().rsa, claims(jwksIssuer), "")
	err := f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(tok)))
	requireCode(t, err, codes.Unauthenticated, "auth: signing keys unavailable")
}

// TestJWKSWeakKey refuses tokens signed with an RSA key under 2048 bits,
// even when the JWKS publishes it.
func TestJWKSWeakKey(t *testing.T) {
	t.Parallel()
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := startJWKS(t, jwk{kid: "weak", alg: jwkset.AlgRS256, key: &weak.PublicKey})
	f := newFilter(t, auth.Config{Providers: []auth.Provider{jwksProvider(srv)}}, auth.WithHTTPClient(srv.Client()))
	tok := sign(t, jwt.SigningMethodRS256, weak, claims(jwksIssuer), "weak")
	err = f.OnRequestHeaders(context.Background(), newCall(unaryMethod, bearerMD(tok)))
	requireCode(t, err, codes.Unauthenticated, "auth: signing key too weak")
}

// TestClose stops the background refresh: no fetch happens after Close
// (goleak in TestMain checks the goroutine ended), Close may be called
// again, and Ready reports the closed filter.
func TestClose(t *testing.T) {
	t.Parallel()
	srv := startJWKS(t, jwk{kid: "k1", alg: jwkset.AlgRS256, key: &keys().rsa.PublicKey})
	p := jwksProvider(srv)
	p.RefreshInterval = 5 * time.Millisecond
	f, err := auth.New(auth.Config{Providers: []auth.Provider{p}}, auth.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "3 fetches", func() bool { return srv.fetches.Load() >= 3 })
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond) // a fetch in flight at Close ends
	n := srv.fetches.Load()
	time.Sleep(50 * time.Millisecond)
	if got := srv.fetches.Load(); got != n {
		t.Errorf("%d fetches after Close", got-n)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := f.Ready(); err == nil {
		t.Error("Ready() = nil after Close")
	}
}
