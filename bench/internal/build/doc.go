// Package build runs the go command for the benchmarks: it finds the bench
// module and the product's module, and builds binaries from them.
//
// The benchmarks must run from the bench/ directory of the Manifold repo;
// [Modules] refuses to work elsewhere.
package build
