// Command manifold is the Manifold gRPC proxy.
//
// Quick mode proxies every method one-to-one to one upstream:
//
//	manifold --listen 127.0.0.1:8080 --upstream 127.0.0.1:9090
//
// --upstream takes a host:port or any grpc target URI (dns:///host:port,
// unix:///path, passthrough:///addr). The proxy starts even when nothing
// listens at the upstream yet; calls fail with UNAVAILABLE until it does.
// SIGTERM or SIGINT stops it gracefully: calls in flight get --drain-timeout
// to finish, then are cancelled. Run manifold --help for every flag.
package main
