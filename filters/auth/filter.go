package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/pipeline"
)

// Name is the filter's name in config files, logs and errors.
const Name = "auth"

// Filter authenticates calls by their JWT bearer token. It only looks at
// request headers. Build it with [New] or [Config.Build]; it is safe for
// concurrent use. Close it to stop the background fetches of JWKS URLs.
type Filter struct {
	header   string
	keep     bool
	forward  []forwardClaim
	rules    []rule
	fallback rule // for calls no rule matches
	jwks     []*jwksKeys
	cache    *tokenCache // nil when off
	now      func() time.Time
	onVerify func() // a test hook, called after each full verification

	cancel    context.CancelFunc // ends the JWKS fetches
	closeOnce sync.Once
	closed    chan struct{}
}

// forwardClaim is one entry of [Config.ForwardClaims].
type forwardClaim struct {
	claim, header string
}

// New validates cfg and builds the filter: it reads key files and makes the
// first fetch of each JWKS URL (a failed fetch is logged, not an error: the
// provider refuses tokens until a fetch succeeds; see [Filter.Ready]).
func New(cfg Config, opts ...Option) (*Filter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	cfg = cfg.withDefaults()
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}

	ctx, cancel := context.WithCancel(context.Background())
	f := &Filter{
		header:   cfg.Header,
		keep:     cfg.KeepToken,
		now:      o.now,
		onVerify: o.onVerify,
		cancel:   cancel,
		closed:   make(chan struct{}),
	}
	if cfg.CacheSize > 0 {
		f.cache = newTokenCache(cfg.CacheSize)
	}
	byName := make(map[string]*provider, len(cfg.Providers))
	var all []*provider
	for i, pc := range cfg.Providers {
		p, err := newProvider(ctx, fmt.Sprintf("providers[%d]", i), pc, o)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("auth: %w", err)
		}
		all = append(all, p)
		byName[p.name] = p
		if p.jwks != nil {
			f.jwks = append(f.jwks, p.jwks)
		}
	}
	for i, rc := range cfg.Rules {
		r, err := compileRule(rc, byName, all)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("auth: rules[%d]: %w", i, err)
		}
		f.rules = append(f.rules, r)
	}
	f.fallback = rule{action: Require, providers: all}
	for _, claim := range sortedKeys(cfg.ForwardClaims) {
		f.forward = append(f.forward, forwardClaim{claim: claim, header: cfg.ForwardClaims[claim]})
	}
	return f, nil
}

// Name returns "auth".
func (f *Filter) Name() string { return Name }

// OnRequestHeaders authenticates the call. In order, it:
//
//  1. removes the client's headers named in forward_claims, and the token
//     header unless keep_token;
//  2. picks the first rule that matches the method (by default, require);
//  3. for a public rule, stops;
//  4. refuses two token headers, a token that is not "Bearer <token>", and
//     a token over [MaxTokenSize] bytes, with UNAUTHENTICATED; a missing
//     token too, unless the rule allows it;
//  5. verifies the token with the provider of its issuer, among the
//     rule's: signature, algorithm, exp, nbf, iat, iss, aud; a failure is
//     UNAUTHENTICATED. A token verified before and remembered (see
//     [Config.CacheSize]) is not decoded again: only its provider, its
//     provider's key generation and its times are checked;
//  6. checks the rule's required claims: PERMISSION_DENIED;
//  7. stores the claims under [pipeline.ClaimsKey] and sets the
//     forward_claims headers.
func (f *Filter) OnRequestHeaders(ctx context.Context, call *pipeline.Call) error {
	for _, fc := range f.forward {
		delete(call.Header, fc.header)
	}
	values := call.Header[f.header]
	if !f.keep {
		delete(call.Header, f.header)
	}

	r := f.match(call.Method)
	if r.action == Public {
		return nil
	}
	switch len(values) {
	case 0:
		if r.action == AllowMissing {
			return nil
		}
		return unauthenticated(reasonMissing)
	case 1:
	default:
		return unauthenticated(reasonTwoHeaders)
	}
	token, why := bearer(values[0])
	if why != "" {
		return unauthenticated(why)
	}

	v, why := f.verify(ctx, r, token)
	if why != "" {
		return unauthenticated(why)
	}
	if name, missing := r.missingClaim(v.claims); missing {
		return status.Errorf(codes.PermissionDenied, "auth: claim %q lacks a required value", name)
	}

	// The claims may be shared with other calls of the same token:
	// pipeline.Claims are read-only.
	pipeline.ClaimsKey.Set(call, v.claims)
	for i, fc := range f.forward {
		if s := v.forward[i]; s != "" {
			call.Header[fc.header] = []string{s}
		}
	}
	return nil
}

// verify returns what is known of token under rule r: from the cache when
// a verification of it still holds, or else from verifying it, which the
// cache then remembers.
func (f *Filter) verify(ctx context.Context, r *rule, token string) (*verifiedToken, string) {
	if f.cache != nil {
		if v := f.cache.get(token); v != nil {
			if v.usable(r, f.now()) {
				return v, ""
			}
			if r.allows(v.provider) {
				// Expired, or its keys changed: it will not be
				// usable again. (For a rule that does not accept
				// its provider, it may still serve other rules.)
				f.cache.remove(v)
			}
			// Verify again: the refusal, if any, is the one the
			// token gets without the cache.
		}
	}
	v, why := verify(ctx, token, r.providers, f.forward)
	if f.onVerify != nil {
		f.onVerify()
	}
	if why == "" && f.cache != nil {
		f.cache.put(v)
	}
	return v, why
}

// match returns the rule for method.
func (f *Filter) match(method string) *rule {
	for i := range f.rules {
		if f.rules[i].match(method) {
			return &f.rules[i]
		}
	}
	return &f.fallback
}

// bearer returns the token of an authorization value "Bearer <token>", or
// why there is none.
func bearer(v string) (string, string) {
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "bearer") {
		return "", reasonNotBearer
	}
	token = strings.Trim(token, " ")
	switch {
	case token == "":
		return "", reasonEmpty
	case len(token) > MaxTokenSize:
		return "", reasonTooLarge
	case hasNonTokenByte(token):
		return "", reasonMalformed
	}
	return token, ""
}

// hasNonTokenByte reports whether a token holds a byte that cannot appear in
// a bearer token: RFC 6750's b64token is letters, digits and "-._~+/" with
// "=" padding. Anything else, a control character especially, is refused
// rather than left to the base64 decoder, which skips CR and LF and so
// would read two different header values as one token. The set is ASCII,
// so bytes are checked, not runes: a byte of a multi-byte rune is refused
// like the rune.
func hasNonTokenByte(token string) bool {
	for i := 0; i < len(token); i++ {
		if !b64token[token[i]] {
			return true
		}
	}
	return false
}

// b64token marks the bytes of a b64token; see [hasNonTokenByte].
var b64token = func() (t [256]bool) {
	for c := range t {
		t[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			strings.IndexByte("-._~+/=", byte(c)) >= 0
	}
	return t
}()

func unauthenticated(reason string) error {
	return status.Error(codes.Unauthenticated, reason)
}

// Ready reports whether every provider can verify tokens: an error names
// each provider whose JWKS URL has not given any key yet, with the last
// fetch error. A provider whose later fetches fail keeps its last good keys
// and stays ready (the failures are logged). After Close, Ready reports an
// error.
func (f *Filter) Ready() error {
	select {
	case <-f.closed:
		return errors.New("auth: filter closed")
	default:
	}
	var errs []error
	for _, j := range f.jwks {
		if err := j.ready(context.Background()); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Close stops the periodic fetches of JWKS URLs and their goroutines. It is
// safe to call more than once. A closed filter still verifies tokens with
// the keys it has, but Ready reports it closed.
func (f *Filter) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		close(f.closed)
	})
	return nil
}

var (
	_ pipeline.RequestHeadersHook = (*Filter)(nil)
	_ io.Closer                   = (*Filter)(nil)
)
