// Package testbackend is a configurable upstream for Manifold's tests: grpc-go's
// interop TestService whose methods are function fields, like grpc-go's
// internal stubserver. Unset methods echo.
package testbackend
