// Package e2e holds Manifold's end-to-end fault, bad-input and security
// tests. They build the proxy the way the binary does — a YAML file through
// config.Load and config.Build, or the whole command line through
// manifold.Run — and drive it over loopback with real grpc-go clients, real
// grpc-go backends (internal/testbackend) instrumented with connection and
// stream gauges, and raw HTTP/2 connections (golang.org/x/net/http2) for
// input no grpc-go client would send.
//
// The package has no API: everything is in its tests.
//
//	go test -race ./e2e/...
package e2e
