package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// jwksKeys are the keys of a JSON Web Key Set, from a file or a URL. Tokens
// are matched to keys by kid; a token without kid is tried against every
// key that fits its algorithm.
type jwksKeys struct {
	kf keyfunc.Keyfunc

	// Set for a URL only.
	provider string
	url      string // redacted, for logs and errors
	interval time.Duration
	log      *slog.Logger
	now      func() time.Time

	mu      sync.Mutex
	lastErr error     // the last failed fetch
	logged  time.Time // when a failed fetch was last logged
}

// newFileJWKS reads a JWKS file. It must hold a key.
func newFileJWKS(path, file string) (*jwksKeys, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s.jwks_file: %w", path, err)
	}
	kf, err := keyfunc.NewJWKSetJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s.jwks_file: %s: %w", path, file, err)
	}
	keys, err := kf.Storage().KeyReadAll(context.Background())
	if err != nil {
		return nil, fmt.Errorf("%s.jwks_file: %s: %w", path, file, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s.jwks_file: %s holds no usable key", path, file)
	}
	return &jwksKeys{kf: kf}, nil
}

// newURLJWKS fetches a JWKS URL once, and again in the background until
// ctx ends. A failed first fetch is not an error: the provider fails closed
// until a fetch succeeds.
func newURLJWKS(ctx context.Context, p Provider, o options) (*jwksKeys, error) {
	u, err := url.Parse(p.JWKSURL)
	if err != nil {
		return nil, err
	}
	j := &jwksKeys{
		provider: p.Name,
		url:      u.Redacted(),
		interval: p.RefreshInterval,
		log:      o.logger,
		now:      o.now,
	}
	noError := true
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{p.JWKSURL}, keyfunc.Override{
		Client:                    o.client,
		HTTPTimeout:               p.FetchTimeout,
		NoErrorReturnFirstHTTPReq: &noError,
		// The wait for the limiter and the fetch share this timeout.
		RateLimitWaitMax:        p.FetchTimeout,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) { return j.fetchFailed },
		RefreshInterval:         p.RefreshInterval,
		RefreshUnknownKID:       rate.NewLimiter(rate.Every(p.UnknownKIDRefreshInterval), 1),
	})
	if err != nil {
		return nil, err
	}
	j.kf = kf
	return j, nil
}

// fetchFailed records a failed fetch and logs it, at most once per refresh
// interval.
func (j *jwksKeys) fetchFailed(ctx context.Context, err error) {
	now := j.now()
	j.mu.Lock()
	j.lastErr = err
	report := j.logged.IsZero() || now.Sub(j.logged) >= j.interval
	if report {
		j.logged = now
	}
	j.mu.Unlock()
	if report {
		j.log.LogAttrs(ctx, slog.LevelWarn, "auth: cannot fetch JWKS; keeping the last good keys",
			slog.String("provider", j.provider), slog.String("url", j.url), slog.String("error", err.Error()))
	}
}

// ready reports an error while the set holds no key.
func (j *jwksKeys) ready(ctx context.Context) error {
	if j.hasKeys(ctx) {
		return nil
	}
	j.mu.Lock()
	err := j.lastErr
	j.mu.Unlock()
	if err == nil {
		err = errors.New("the key set is empty")
	}
	return fmt.Errorf("auth: provider %q: no keys from %s: %w", j.provider, j.url, err)
}

func (j *jwksKeys) hasKeys(ctx context.Context) bool {
	keys, err := j.kf.Storage().KeyReadAll(ctx)
	return err == nil && len(keys) > 0
}

func (j *jwksKeys) keyfunc(ctx context.Context) jwt.Keyfunc {
	inner := j.kf.KeyfuncCtx(ctx)
	return func(t *jwt.Token) (any, error) {
		kind := algKeys[t.Method.Alg()]
		key, err := inner(t)
		if err != nil {
			// Not found, or not refreshed now (rate limit, failed fetch).
			if !j.hasKeys(ctx) {
				return nil, errKeysUnavailable
			}
			return nil, errUnknownKey
		}
		if set, ok := key.(jwt.VerificationKeySet); ok {
			// No kid: the keys that fit the algorithm.
			var keys []jwt.VerificationKey
			for _, k := range set.Keys {
				if fits(kind, k) {
					keys = append(keys, k)
				}
			}
			switch {
			case len(set.Keys) == 0:
				return nil, errKeysUnavailable
			case len(keys) == 0:
				return nil, errUnknownKey
			}
			return jwt.VerificationKeySet{Keys: keys}, nil
		}
		if !fits(kind, key) {
			if _, isRSA := key.(*rsa.PublicKey); isRSA && kind == rsaKey {
				return nil, errWeakKey
			}
			return nil, errUnknownKey
		}
		return key, nil
	}
}
