// Package echopb is the small echo service that Manifold's examples and tests proxy.
package echopb

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
