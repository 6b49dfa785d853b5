// Package ratelimit is the "rate_limit" filter: a local token-bucket limit on
// calls, in the manner of Envoy's local_ratelimit, built on
// [golang.org/x/time/rate].
//
// Each call takes one token from a bucket that holds at most burst tokens
// and refills at rate tokens per second. A call that finds the bucket empty
// is refused at once, before the upstream is contacted, with
// RESOURCE_EXHAUSTED, the message "rate_limit: rate limit exceeded", a
// [google.golang.org/genproto/googleapis/rpc/errdetails.RetryInfo] detail
// giving the time until a token is available, and the same time in whole
// seconds, rounded up, in the "retry-after" trailer. Calls are never queued.
//
// The filter only looks at request headers. One filter instance holds its
// own buckets: placed on a route, it limits that route; placed in the global
// chain, it limits everything.
//
// # Keys
//
// key chooses which calls share a bucket:
//
//   - "" or "none": one bucket for every call through the filter;
//   - "peer": one per client IP address (the port is ignored);
//   - "claim:NAME": one per value of the verified claim NAME
//     ([pipeline.ClaimsKey], so put the filter after "auth");
//   - "header:NAME": one per first value of the request header NAME, as
//     earlier filters left it ([pipeline.Call.Header]; hop-by-hop keys such
//     as user-agent, which never go upstream, are read from the client's
//     own metadata).
//
// Calls whose key has no value (no such claim, no such header, no peer
// address) are not refused for that reason: they all share one extra
// bucket, with the same rate and burst. Unauthenticated callers thus have
// one budget between them, and a client cannot escape a header limit by
// leaving the header out.
//
// A header value is chosen by the client, which can send a new one on every
// call: a header key limits well-behaved clients (a tenant id set by a
// trusted gateway, say), not an attacker. Claims are verified, and peer
// addresses are only as trustworthy as the network in front of the proxy.
//
// # Memory
//
// Per-key buckets are bounded: at most max_keys are kept, least recently
// used first out. A bucket that has refilled completely is the same as a new
// one, so the filter drops such idle buckets as calls pass. When more than
// max_keys keys are active at once, an evicted key gets a full bucket on its
// next call: the limit becomes approximate rather than the memory unbounded.
// Keys longer than 64 bytes are stored as their SHA-256 digest.
package ratelimit
