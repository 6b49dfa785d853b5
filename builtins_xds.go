//go:build xds

package manifold

// xds:/// cluster targets: grpc-go's xDS resolver and balancers. Not in the
// default build: they add about 14 MB to the binary (docs/operations.md).
// Build with `go build -tags xds ./cmd/manifold`.
import _ "github.com/manifold-grpc/manifold/xds"
