// Package manifold is the Manifold gRPC proxy as a program: the command
// line that cmd/manifold runs, available to programs that build their own
// binary with their own filters (see [Main]).
//
// The building blocks live in their own packages: [pipeline] (filters and
// chains), [server], [cluster], [router], the terminals filters/route and
// filters/fanout, the built-in filters, and [config] for the YAML file.
package manifold
