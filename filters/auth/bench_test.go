package auth_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/manifold-grpc/manifold/filters/auth"
	"github.com/manifold-grpc/manifold/pipeline"
)

// BenchmarkOnRequestHeaders measures the request hook alone, per signing
// algorithm, for a token seen before (a cache hit), for tokens the cache
// cannot hold (a miss: every call verifies, then stores), and with the
// cache off. The call is reused: only its token header is put back.
func BenchmarkOnRequestHeaders(b *testing.B) {
	k := keys()
	const pool = 256 // distinct tokens for "miss", twice the cache
	algs := []struct {
		name     string
		provider auth.Provider
		sign     func(i int) string
	}{
		{"HS256", staticProviders(b)[3], func(i int) string {
			return sign(b, jwt.SigningMethodHS256, k.hmac, claims(hmacIssuer, "jti", fmt.Sprint(i)), "")
		}},
		{"RS256", staticProviders(b)[0], func(i int) string {
			return sign(b, jwt.SigningMethodRS256, k.rsa, claims(rsaIssuer, "jti", fmt.Sprint(i)), "")
		}},
		{"ES256", staticProviders(b)[1], func(i int) string {
			return sign(b, jwt.SigningMethodES256, k.ec, claims(ecIssuer, "jti", fmt.Sprint(i)), "")
		}},
	}
	for _, alg := range algs {
		tokens := make([][]string, pool)
		for i := range tokens {
			tokens[i] = []string{"Bearer " + alg.sign(i)}
		}
		for _, mode := range []struct {
			name   string
			size   int
			tokens [][]string
		}{
			{"hit", 0, tokens[:1]},
			{"miss", pool / 2, tokens},
			{"disabled", -1, tokens[:1]},
		} {
			b.Run(alg.name+"/"+mode.name, func(b *testing.B) {
				f := newFilter(b, auth.Config{
					Providers:     []auth.Provider{alg.provider},
					ForwardClaims: map[string]string{"sub": "x-jwt-sub"},
					CacheSize:     mode.size,
				})
				call := newCall(unaryMethod, nil)
				ctx := context.Background()
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					call.Header["authorization"] = mode.tokens[i%len(mode.tokens)]
					i++
					if err := f.OnRequestHeaders(ctx, call); err != nil {
						b.Fatal(err)
					}
				}
				if _, ok := pipeline.ClaimsKey.Get(call); !ok {
					b.Fatal("no claims")
				}
			})
		}
	}
}
