// Package cluster holds Manifold's upstreams: each [Cluster] is one
// [grpc.ClientConn] made once with [grpc.NewClient], shared by every call
// routed to it, and closed on shutdown.
//
// Name resolution, load balancing, keepalive, TLS and retries come from
// grpc-go itself: a cluster is a grpc target URI (dns:///, passthrough:///,
// unix:, or any registered resolver) or a static list of addresses, which is
// fed to grpc-go's own resolver and balancer machinery (round_robin by
// default). A client can never make the proxy dial an address: only targets
// in a cluster's config are ever dialed.
//
// # Circuit breakers
//
// [CircuitBreakers] bound the calls in flight to a cluster and the calls
// waiting for a connection, with grpc client interceptors on the
// connection. A call past a limit fails at once with UNAVAILABLE and is
// counted in the [OverflowMetric] counter. The slot of a call is given
// back when grpc-go finishes its stream (reported through
// [grpc.OnFinish]), so every way a stream ends releases it exactly once.
//
// # Retries
//
// [RetryPolicy] entries become the retryPolicy of methodConfig entries in
// the connection's default service config: grpc-go retries, with its own
// backoff, throttling ([RetryThrottling]) and replay buffer. Retry only
// idempotent methods. A service config that a resolver supplies (DNS TXT
// records) is ignored ([grpc.WithDisableServiceConfig]), so that DNS cannot
// turn retries on; xds: targets keep theirs, since xDS delivers routing and
// balancing as service config. Hedging is not available: grpc-go does not
// implement it.
//
// # TLS
//
// [Config.TLS] is used with TLS 1.2 at least, whatever its MinVersion.
package cluster
