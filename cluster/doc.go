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
package cluster
