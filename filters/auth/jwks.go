package auth

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
)

// jwksKeys are the keys of a JSON Web Key Set, from a file or a URL. Tokens
// are matched to keys by kid; a token without kid is tried against every
// key that fits its algorithm.
type jwksKeys struct {
	kf keyfunc.Keyfunc
	// store holds the keys of a URL, nil for a file (read once).
	store *versionedStorage

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
	// keyfunc.NewDefaultOverrideCtx, but with a storage that counts the
	// changes of the key set, for the cache of verified tokens.
	j.store = &versionedStorage{MemoryJWKSet: jwkset.NewMemoryStorage()}
	remote, err := jwkset.NewStorageFromHTTP(p.JWKSURL, jwkset.HTTPClientStorageOptions{
		Client:                    o.client,
		Ctx:                       ctx,
		HTTPTimeout:               p.FetchTimeout,
		NoErrorReturnFirstHTTPReq: true,
		RefreshErrorHandler:       j.fetchFailed,
		RefreshInterval:           p.RefreshInterval,
		Storage:                   j.store,
	})
	if err != nil {
		return nil, err
	}
	client, err := jwkset.NewHTTPClient(jwkset.HTTPClientOptions{
		HTTPURLs: map[string]jwkset.Storage{p.JWKSURL: remote},
		// The wait for the limiter and the fetch share this timeout.
		RateLimitWaitMax:  p.FetchTimeout,
		RefreshUnknownKID: rate.NewLimiter(rate.Every(p.UnknownKIDRefreshInterval), 1),
	})
	if err != nil {
		return nil, err
	}
	kf, err := keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: client})
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

// generation counts the changes of a URL's key set; a file's is 0.
func (j *jwksKeys) generation() uint64 {
	if j.store == nil {
		return 0
	}
	return j.store.gen.Load()
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

// versionedStorage is the key storage of a JWKS URL. It counts the changes
// of its key set: every fetch replaces the whole set, and when the new set
// differs from the old one, the generation goes up, after the new keys are
// in place (so whoever reads the new generation finds the new keys).
type versionedStorage struct {
	*jwkset.MemoryJWKSet

	mu  sync.Mutex // orders the writers, so each compares with the set it replaces
	gen atomic.Uint64
}

func (s *versionedStorage) KeyReplaceAll(ctx context.Context, given []jwkset.JWK) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.MemoryJWKSet.KeyReadAll(ctx)
	if err == nil {
		err = s.MemoryJWKSet.KeyReplaceAll(ctx, given)
	}
	// On an error, the set may or may not have changed.
	if err != nil || !sameKeys(old, given) {
		s.gen.Add(1)
	}
	return err
}

// KeyWrite and KeyDelete are not used by the fetches; they count as
// changes all the same.

func (s *versionedStorage) KeyWrite(ctx context.Context, jwk jwkset.JWK) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	return s.MemoryJWKSet.KeyWrite(ctx, jwk)
}

func (s *versionedStorage) KeyDelete(ctx context.Context, keyID string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.gen.Add(1)
	return s.MemoryJWKSet.KeyDelete(ctx, keyID)
}

// sameKeys reports whether two key sets are equal, key by key in order: the
// same parameters (kid, alg, use, key material...) as published. A JWK is
// made from its published parameters, so equal parameters are equal keys.
func sameKeys(a, b []jwkset.JWK) bool {
	return slices.EqualFunc(a, b, func(x, y jwkset.JWK) bool {
		return reflect.DeepEqual(x.Marshal(), y.Marshal())
	})
}

var _ jwkset.Storage = (*versionedStorage)(nil)
