// Package proxytest starts a Manifold proxy in front of a test backend over
// loopback TCP, with clients to both, for end-to-end tests.
package proxytest
