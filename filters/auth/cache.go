package auth

import (
	"container/list"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/manifold-grpc/manifold/pipeline"
)

// verifiedToken is what a successful verification learned about a token,
// kept so that the next call with the same token need not parse it or check
// its signature again. It is never changed once made: readers share it
// without a lock.
type verifiedToken struct {
	token    string
	provider *provider
	// keyGen is the provider's key generation read before its keys were
	// looked up: the entry is trusted only while the keys are unchanged.
	keyGen uint64
	claims pipeline.Claims
	// The token is valid from "from" (inclusive) until "until"
	// (exclusive), leeway applied, exactly as the provider's validator
	// checks "exp", "nbf" and, when check_iat is set, "iat". from is the
	// zero time when neither bounds it.
	from, until time.Time
	// forward are the values of the filter's forward_claims headers, in
	// its order; "" for none.
	forward []string
}

// newVerifiedToken records a token that p verified with its keys of
// generation gen. claims have passed p's validator, so "exp" is present and
// every time claim is a number.
func newVerifiedToken(token string, p *provider, gen uint64, claims jwt.MapClaims, forward []forwardClaim) *verifiedToken {
	v := &verifiedToken{
		token:    token,
		provider: p,
		keyGen:   gen,
		claims:   pipeline.Claims(claims),
	}
	if exp, _ := claims.GetExpirationTime(); exp != nil {
		v.until = exp.Add(p.leeway)
	}
	if nbf, _ := claims.GetNotBefore(); nbf != nil {
		v.from = nbf.Add(-p.leeway)
	}
	if p.checkIssuedAt {
		if iat, _ := claims.GetIssuedAt(); iat != nil {
			if t := iat.Add(-p.leeway); t.After(v.from) {
				v.from = t
			}
		}
	}
	if len(forward) > 0 {
		v.forward = make([]string, len(forward))
		for i, fc := range forward {
			if s, ok := claimText(claims[fc.claim]); ok && pipeline.ValidPair(fc.header, s) {
				v.forward[i] = s
			}
		}
	}
	return v
}

// usable reports whether v may stand for a verification by r at now: its
// provider is one of r's (the one a verification would pick, as issuers
// are unique), that provider's keys are those that verified it, and its
// times hold. The comparisons are the validator's own, so a token is
// refused at the same instant with or without the cache.
func (v *verifiedToken) usable(r *rule, now time.Time) bool {
	return r.allows(v.provider) &&
		v.keyGen == v.provider.keys.generation() &&
		now.Before(v.until) && !now.Before(v.from)
}

// tokenCache remembers the most recently used verified tokens, at most max
// of them, keyed by the exact token. Only verified tokens go in, so a
// client cannot fill it with tokens of its making. It is safe for
// concurrent use; one mutex is enough, as a hit holds it for a map lookup
// and a list move.
type tokenCache struct {
	max int

	mu    sync.Mutex
	byKey map[string]*list.Element // of *verifiedToken
	lru   list.List                // front: most recently used
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, byKey: make(map[string]*list.Element, min(max, 1024))}
}

// get returns the entry for token, or nil.
func (c *tokenCache) get(token string) *verifiedToken {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.byKey[token]
	if !ok {
		return nil
	}
	c.lru.MoveToFront(e)
	return e.Value.(*verifiedToken)
}

// put adds v, or replaces the entry of its token, and evicts the least
// recently used entry beyond max.
func (c *tokenCache) put(v *verifiedToken) {
	// Not a substring of the request's header value, which the entry
	// would otherwise keep alive. v is not shared yet.
	v.token = strings.Clone(v.token)
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[v.token]; ok {
		e.Value = v
		c.lru.MoveToFront(e)
		return
	}
	c.byKey[v.token] = c.lru.PushFront(v)
	for c.lru.Len() > c.max {
		old := c.lru.Remove(c.lru.Back()).(*verifiedToken)
		delete(c.byKey, old.token)
	}
}

// remove drops v, unless its token has a newer entry since.
func (c *tokenCache) remove(v *verifiedToken) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byKey[v.token]; ok && e.Value == v {
		c.lru.Remove(e)
		delete(c.byKey, v.token)
	}
}

// len returns the number of entries.
func (c *tokenCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}
