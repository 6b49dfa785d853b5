// Package testpki makes certificates for Manifold's tests: a throwaway
// certificate authority per test that issues server and client
// certificates with chosen subject alternative names, and writes them as
// PEM files the way rotating tools do.
//
// Every key is ECDSA P-256; every certificate is valid from an hour ago
// to an hour from now and has a random 128-bit serial number. Helpers take
// a [testing.TB] and fail the test on error.
//
//	ca := testpki.NewCA(t, "ca")
//	cert := ca.Server(t, "upstream") // for 127.0.0.1, ::1 and localhost
//	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
//	clientTLS := &tls.Config{RootCAs: ca.Pool()}
package testpki
