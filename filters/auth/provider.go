package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// provider verifies the tokens of one issuer.
type provider struct {
	name       string
	issuer     string
	algorithms []string
	parser     *jwt.Parser
	keys       keySource
	jwks       *jwksKeys // set for a JWKS URL, to report readiness
}

// newProvider reads p's keys; ctx ends the background fetches of a JWKS
// URL.
func newProvider(ctx context.Context, path string, p Provider, o options) (*provider, error) {
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(slices.Clone(p.Algorithms)),
		jwt.WithIssuer(p.Issuer),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(p.Leeway),
		jwt.WithTimeFunc(o.now),
		jwt.WithStrictDecoding(),
	}
	if len(p.Audiences) > 0 {
		popts = append(popts, jwt.WithAudience(p.Audiences...))
	}
	if p.CheckIssuedAt {
		popts = append(popts, jwt.WithIssuedAt())
	}
	pr := &provider{
		name:       p.Name,
		issuer:     p.Issuer,
		algorithms: slices.Clone(p.Algorithms),
		parser:     jwt.NewParser(popts...),
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

// verify checks the token's signature and claims and returns its claims,
// or the reason it is refused (see [reason]).
func (p *provider) verify(ctx context.Context, token string) (jwt.MapClaims, string) {
	claims := jwt.MapClaims{}
	t, err := p.parser.ParseWithClaims(token, claims, p.keys.keyfunc(ctx))
	if err != nil {
		return nil, p.reason(t, claims, err)
	}
	if _, crit := t.Header["crit"]; crit {
		// No critical header extension is understood (RFC 7515 4.1.11).
		return nil, reasonCrit
	}
	return claims, ""
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
	if alg, _ := t.Header["alg"].(string); !slices.Contains(p.algorithms, alg) {
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
