// Package auth is the "auth" filter: JWT bearer-token authentication, in the
// manner of Envoy's jwt_authn.
//
// The filter reads "authorization: Bearer <token>" from the request
// headers, verifies the token against a configured provider, and either
// lets the call on (with the verified claims under [pipeline.ClaimsKey] and
// chosen claims copied into upstream headers) or ends it:
//
//   - UNAUTHENTICATED when the token is missing, malformed, too large
//     (over [MaxTokenSize]), sent twice, signed with an algorithm or key
//     the provider does not accept, badly signed, expired, not yet valid,
//     or for the wrong issuer or audience, and when the provider has no
//     keys (a JWKS URL that could not be fetched: it fails closed);
//   - PERMISSION_DENIED when a valid token lacks a claim value the rule
//     requires.
//
// The status message is a short reason such as "auth: token expired"; it
// never contains the token, and the filter never logs tokens.
//
// # Configuration
//
// A provider names an issuer, its accepted audiences, the signing
// algorithms it uses (required: there is no default, and "none" is never
// accepted), and one source of keys: PEM files, an HMAC secret file (HS*
// only, at least 32 bytes), a local JWKS file, or a JWKS URL that is
// fetched again periodically and when a token names an unknown key id.
// Every token must have an "exp"; "nbf" is honored, "iat" checked on
// request.
//
// Rules match methods ("/pkg.Service/Method", "/pkg.Service/*", "/pkg.*",
// "*"); the first that matches applies, and a call that matches none needs
// a valid token. A rule's action is "require", "allow_missing" (no token is
// fine, a bad one is not) or "public" (nothing checked). In YAML:
//
//	providers:
//	  - name: corp
//	    issuer: https://login.example.com/
//	    audiences: [orders-api]
//	    algorithms: [RS256, ES256]
//	    leeway: 30s
//	    jwks_url: https://login.example.com/.well-known/jwks.json
//	    refresh_interval: 5m
//	  - name: ci
//	    issuer: ci.example.com
//	    algorithms: [HS256]
//	    hmac_secret_file: /etc/manifold/ci-secret
//	rules:
//	  - methods: ["/grpc.health.v1.Health/*"]
//	    action: public
//	  - methods: ["/orders.v1.Orders/Delete*"]
//	    claims: {scope: orders.admin}
//	  - methods: ["/orders.v1.Orders/*"]
//	    providers: [corp]
//	  - methods: ["/catalog.*"]
//	    action: allow_missing
//	forward_claims: {sub: x-jwt-sub}
//	cache_size: 5000
//
// The fields are those of [Config], [Provider] and [Rule].
//
// # Verified tokens are remembered
//
// Clients send the same token on call after call, and checking its
// signature is most of the filter's cost. So the filter remembers, by the
// exact token, the last cache_size tokens it verified (default 1000; -1
// turns this off): their claims, their provider and their times. A
// remembered token is not decoded again, nor its signature checked, but on
// every call:
//
//   - its "exp", "nbf" and (with check_iat) "iat" are checked against the
//     clock with the provider's leeway, so it is refused from the same
//     instant as without the cache;
//   - it passes only a rule that accepts the provider that verified it;
//   - it is verified again once its provider's JWKS URL has published a
//     changed key set (keys from files never change);
//   - the rule's required claims are checked, and claim headers set.
//
// Refused tokens are never remembered. Later filters share the claims of
// a remembered token: [pipeline.Claims] are read-only.
//
// # Headers
//
// On every call, whatever the rule, the filter first removes from the
// upstream request the headers named in forward_claims (a client cannot
// forge them) and the token header (unless keep_token). It then sets the
// forward_claims headers from the verified token, if any. It reads the
// token from the outbound headers ([pipeline.Call.Header]), so an earlier
// filter may supply it. Put one auth filter in a chain: a second would find
// the token already removed.
//
// # Lifecycle
//
// [New] reads key files and fetches each JWKS URL once, waiting at most
// fetch_timeout; a fetch that fails is logged (at most once per refresh interval), the provider refuses its
// tokens until a fetch succeeds, and [Filter.Ready] reports it. The filter
// refreshes JWKS URLs in the background until [Filter.Close].
package auth
