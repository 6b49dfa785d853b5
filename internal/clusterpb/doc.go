// Package clusterpb is a small Talos-style cluster API that Manifold's
// one-to-many tests and examples proxy to several nodes at once.
//
// Every response item carries a [Metadata] in field 1 with the layout of
// Talos' common.Metadata (hostname = 1, error = 2, status = 3), and every
// unary response holds its items in repeated field 1, which is the default
// layout of the metadata splice filter (filters/metadata).
//
// The Go code is generated from cluster.proto and committed. The file
// third_party/google/rpc/status.proto is a verbatim copy of googleapis'
// google/rpc/status.proto, compiled as an import but not generated: the
// generated code uses google.golang.org/genproto/googleapis/rpc/status.
package clusterpb

//go:generate go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate
