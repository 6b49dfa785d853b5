// Package server runs a Manifold proxy: a [grpc.Server] whose unknown-service
// handler sends every call, as raw frames, through a [pipeline.Handler].
//
// The server answers the gRPC health service itself, limits message sizes
// (64 MiB each way by default, so that the proxy never refuses what its
// upstreams accept), limits each client connection's concurrent calls
// ([DefaultMaxConcurrentStreams]) and each request's headers
// ([DefaultMaxHeaderListSize]), enforces keepalive, optionally serves TLS
// (1.2 or later) or mutual TLS, with certificates and client CAs reloaded
// from their files when they change ([CertReloader]), and stops gracefully: [Server.Shutdown] stops accepting calls, lets
// the calls in flight finish until its context ends, then cancels the rest
// and closes every upstream connection it was given.
package server
