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
//
// The fields are those of [Config], [Provider] and [Rule].
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
