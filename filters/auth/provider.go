package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// provider verifies the tokens of one issuer.
type provider struct {
	name          string
	issuer        string
	algorithms    []string
	leeway        time.Duration
	checkIssuedAt bool
	validator     *jwt.Validator // exp, nbf, iat, iss, aud
	keys          keySource
	jwks          *jwksKeys // set for a JWKS URL, to report readiness
}

// newProvider reads p's keys; ctx ends the background fetches of a JWKS
// URL.
func newProvider(ctx context.Context, path string, p Provider, o options) (*provider, error) {
	popts := []jwt.ParserOption{
		jwt.WithIssuer(p.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(p.Leeway),
		jwt.WithTimeFunc(o.now),
	}
	if len(p.Audiences) > 0 {
		popts = append(popts, jwt.WithAudience(p.Audiences...))
	}
	if p.CheckIssuedAt {
		popts = append(popts, jwt.WithIssuedAt())
	}
	pr := &provider{
		name:          p.Name,
		issuer:        p.Issuer,
		algorithms:    slices.Clone(p.Algorithms),
		leeway:        p.Leeway,
		checkIssuedAt: p.CheckIssuedAt,
		validator:     jwt.NewValidator(popts...),
	}
	switch {
	case len(p.PEMFiles) > 0:
		keys, err := readPEMFiles(path, p.PEMFiles)
		if err != nil {
			return nil, err
		}
		if pr.keys, err = newStaticKeys(path, p.Algorithms, keys); err != nil {
			return nil, err
		}
	case p.HMACSecretFile != "":
		secret, err := readHMACSecret(path, p.HMACSecretFile)
		if err != nil {
			return nil, err
		}
		if pr.keys, err = newStaticKeys(path, p.Algorithms, []any{secret}); err != nil {
			return nil, err
		}
	case p.JWKSFile != "":
		keys, err := newFileJWKS(path, p.JWKSFile)
		if err != nil {
			return nil, err
		}
		pr.keys = keys
	case p.JWKSURL != "":
		keys, err := newURLJWKS(ctx, p, o)
		if err != nil {
			return nil, fmt.Errorf("%s.jwks_url: %w", path, err)
		}
		pr.keys, pr.jwks = keys, keys
	default:
		return nil, fmt.Errorf("%s: no keys", path)
	}
	return pr, nil
}

// parser decodes tokens and checks their signatures. It leaves the claims
// to the validator of the token's provider, which [verify] picks by issuer
// once the token is decoded, so that each token is decoded only once.
var parser = jwt.NewParser(jwt.WithStrictDecoding(), jwt.WithoutClaimsValidation())

// Reasons the key function of [verify] gives up; see [provider.reason].
var (
	// errNoProvider: none of the rule's providers has the token's issuer.
	errNoProvider = errors.New("no provider for the issuer")
	// errAlgorithm: the provider does not accept the token's algorithm.
	errAlgorithm = errors.New("algorithm not accepted")
)

// verify decodes token once and checks it with the provider, among
// providers, of its issuer: algorithm, signature with the provider's keys,
// then exp, nbf, iat, iss and aud. It returns what it verified, or the
// reason the token is refused (see [provider.reason]).
func verify(ctx context.Context, token string, providers []*provider, forward []forwardClaim) (*verifiedToken, string) {
	claims := jwt.MapClaims{}
	var (
		p   *provider
		gen uint64
	)
	t, err := parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		// The parser calls this once the token is decoded, before it
		// checks the signature.
		if p = providerOf(providers, claims); p == nil {
			return nil, errNoProvider
		}
		if !slices.Contains(p.algorithms, t.Method.Alg()) {
			return nil, errAlgorithm
		}
		// Read before the keys: a change of keys from here on makes
		// the entry stale rather than trusted with keys it never saw.
		gen = p.keys.generation()
		return p.keys.keyfunc(ctx)(t)
	})
	if err == nil {
		if verr := p.validator.Validate(claims); verr != nil {
			err = fmt.Errorf("%w: %w", jwt.ErrTokenInvalidClaims, verr)
		}
	}
	if err != nil {
		if errors.Is(err, jwt.ErrTokenMalformed) || t == nil {
			return nil, reasonMalformed
		}
		if p == nil {
			// The key function did not run (an unknown "alg"), or
			// found no provider.
			if p = providerOf(providers, claims); p == nil {
				return nil, reasonIssuer
			}
		}
		return nil, p.reason(t, claims, err)
	}
	if _, crit := t.Header["crit"]; crit {
		// No critical header extension is understood (RFC 7515 4.1.11).
		return nil, reasonCrit
	}
	return newVerifiedToken(token, p, gen, claims, forward), ""
}

// providerOf returns the provider among providers whose issuer the claims
// name, or nil.
func providerOf(providers []*provider, claims jwt.MapClaims) *provider {
	iss, _ := claims.GetIssuer()
	for _, p := range providers {
		if p.issuer == iss {
			return p
		}
	}
	return nil
}

// The reasons a token is refused, the messages of UNAUTHENTICATED.
const (
	reasonMissing      = "auth: token missing"
	reasonTwoHeaders   = "auth: more than one token header"
	reasonNotBearer    = "auth: not a bearer token"
	reasonEmpty        = "auth: empty bearer token"
	reasonTooLarge     = "auth: token too large"
	reasonMalformed    = "auth: malformed token"
	reasonAlgorithm    = "auth: algorithm not allowed"
	reasonBadSignature = "auth: bad signature"
	reasonUnknownKey   = "auth: unknown signing key"
	reasonWeakKey      = "auth: signing key too weak"
	reasonNoKeys       = "auth: signing keys unavailable"
	reasonExpired      = "auth: token expired"
	reasonNoExpiry     = "auth: token has no exp"
	reasonNotYetValid  = "auth: token not yet valid"
	reasonIssuedLater  = "auth: token issued in the future"
	reasonIssuer       = "auth: wrong issuer"
	reasonAudience     = "auth: wrong audience"
	reasonClaims       = "auth: invalid claims"
	reasonCrit         = "auth: unsupported critical header"
	reasonInvalid      = "auth: invalid token"
)

// reason turns a jwt error into a short message that names the problem and
// never the token.
func (p *provider) reason(t *jwt.Token, claims jwt.MapClaims, err error) string {
	if errors.Is(err, jwt.ErrTokenMalformed) || t == nil {
		return reasonMalformed
	}
	if alg, _ := t.Header["alg"].(string); !slices.Contains(p.algorithms, alg) || errors.Is(err, errAlgorithm) {
		return reasonAlgorithm
	}
	switch {
	case errors.Is(err, errKeysUnavailable):
		return reasonNoKeys
	case errors.Is(err, errUnknownKey):
		return reasonUnknownKey
	case errors.Is(err, errWeakKey):
		return reasonWeakKey
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return reasonBadSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		// Only exp, iss and aud can be required.
		if exp, _ := claims.GetExpirationTime(); exp == nil {
			return reasonNoExpiry
		}
		if iss, _ := claims.GetIssuer(); iss == "" {
			return reasonIssuer
		}
		return reasonAudience
	case errors.Is(err, jwt.ErrTokenExpired):
		return reasonExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return reasonNotYetValid
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return reasonIssuedLater
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return reasonIssuer
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return reasonAudience
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		return reasonClaims
	}
	return reasonInvalid
}
