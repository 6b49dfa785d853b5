// Package clientcert is the "client_cert" filter: it lets a call through
// only when the client presented a verified TLS certificate whose subject
// alternative names (SANs) the route allows, in the manner of Envoy's RBAC
// principals and Istio's authorization on SPIFFE IDs.
//
// The listener verifies the certificate (mutual TLS: a client CA file, see
// [github.com/manifold-grpc/manifold/server.CertReloader]); the filter reads
// the verified leaf from the call's connection and matches its SANs against
// lists of allowed DNS names, URIs, email addresses and IP addresses. A call
// is allowed when any SAN of the leaf matches any entry. Otherwise it ends:
//
//   - UNAUTHENTICATED "client_cert: no verified client certificate" when the
//     connection is not TLS, the client sent no certificate, or sent one the
//     listener did not verify (a listener with client auth "request" or
//     "require_any"): the caller has no valid credentials;
//   - PERMISSION_DENIED when the certificate is verified but no SAN is
//     allowed: the caller is known and refused. The message names, per
//     configured kind, whether the certificate has no SAN of that kind or
//     none that matches, e.g. "client_cert: certificate not allowed: uri:
//     none matches; dns: none in certificate". It never contains the
//     certificate's names, and the filter logs nothing.
//
// Following gRPC's conventions (and Envoy's), the filter answers before the
// upstream call is opened, so a refused call never reaches an upstream.
//
// The matched SAN is stored in the call under [IdentityKey], for later
// filters and access logs.
//
// # Matching
//
//   - dns_names: "api.example.com" matches that name, case-insensitively;
//     "*.example.com" matches exactly one more label ("a.example.com", not
//     "example.com" nor "a.b.example.com"). A wildcard needs at least two
//     labels after it. A certificate's own wildcard SAN matches only the same
//     pattern written in config, never as a wildcard.
//   - uris: exact, or a prefix ending in "*":
//     "spiffe://cluster.local/ns/orders/sa/api" or
//     "spiffe://cluster.local/ns/orders/*" (end a prefix with "/" before the
//     "*" so that it cannot match "ns/orders-evil").
//   - emails: "ops@example.com" exactly (the domain case-insensitively), or
//     "@example.com" for any address at that domain.
//   - ips: an address ("10.1.2.3", "2001:db8::1") or a CIDR prefix
//     ("10.0.0.0/8"); IPv4-mapped IPv6 SANs match as IPv4.
//
// In YAML, on a route:
//
//	filters:
//	  - client_cert:
//	      uris: ["spiffe://cluster.local/ns/orders/sa/api", "spiffe://cluster.local/ns/batch/*"]
//	      dns_names: ["*.internal.example.com"]
//
// The fields are those of [Config].
package clientcert
