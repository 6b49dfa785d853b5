package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	testpb "google.golang.org/grpc/interop/grpc_testing"

	"github.com/manifold-grpc/manifold/bench/internal/build"
)

// Environment variables between the building process and the pinned one.
const (
	// envBuilt names the directory with the built binaries; when set, the
	// process is the pinned re-run and builds nothing.
	envBuilt = "MANIFOLD_BENCH_BUILT"
	// envPinned is "1" when the re-run was started under taskset.
	envPinned = "MANIFOLD_BENCH_PINNED"
	// envMwitkow is "0" when grpc-proxy did not build.
	envMwitkow = "MANIFOLD_BENCH_MWITKOW"
)

// Binary names in the build directory.
const (
	binBackend   = "backend"
	binFloor     = "floor"
	binMwitkow   = "mwitkow"
	binManifold  = "manifold"
	protosetFile = "benchmark.protoset"
)

// buildAll builds every piece into a new temporary directory, each a main
// package built with go build: the backend, floor and mwitkow from the bench
// module, Manifold's real binary from the product's own module (with its
// own go.mod, as users build it). It also writes the BenchmarkService
// protoset that Manifold's fan-out reads.
func buildAll(ctx context.Context, s *settings) (string, error) {
	benchDir, rootDir, err := build.Modules(ctx)
	if err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp("", "manifold-bench-")
	if err != nil {
		return "", err
	}
	fail := func(err error) (string, error) {
		os.RemoveAll(dir)
		return "", err
	}
	logf("building backend and floor (bench module), manifold (%s) into %s", rootDir, dir)
	if err := build.Go(ctx, benchDir, dir, "./backend", "./floor"); err != nil {
		return fail(err)
	}
	if err := build.Go(ctx, rootDir, filepath.Join(dir, binManifold), "./cmd/manifold"); err != nil {
		return fail(err)
	}
	if want(s.Proxies, proxyMwitkow) {
		if err := build.Go(ctx, benchDir, dir, "./mwitkow"); err != nil {
			logf("mwitkow/grpc-proxy does not build; its column is left out: %v", err)
			os.Setenv(envMwitkow, "0")
		}
	}
	if err := writeProtoset(filepath.Join(dir, protosetFile)); err != nil {
		return fail(err)
	}
	return dir, nil
}

// writeProtoset writes the BenchmarkService's descriptors, with their
// imports, as a descriptor set file (what protoc --include_imports
// --descriptor_set_out writes).
func writeProtoset(path string) error {
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		for i := 0; i < fd.Imports().Len(); i++ {
			add(fd.Imports().Get(i).FileDescriptor)
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(testpb.File_grpc_testing_benchmark_service_proto)
	b, err := proto.Marshal(set)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// pinSelf runs this program again under taskset on core 0, where the client
// and the backend run, and does not return unless that is impossible or
// turned off. The new process inherits the build directory.
func pinSelf(s *settings, bin string) error {
	if s.NoPin {
		return fmt.Errorf("-no-pin")
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return fmt.Errorf("no taskset")
	}
	if n := cpuCount(); n < 2 {
		return fmt.Errorf("%d core", n)
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	env := append(os.Environ(), envBuilt+"="+bin, envPinned+"=1")
	logf("pinning the client to core 0 and each proxy to core 1 (taskset)")
	return syscall.Exec(taskset, append([]string{"taskset", "-c", "0", exe}, os.Args[1:]...), env)
}

func want(list []string, name string) bool {
	for _, s := range list {
		if s == name {
			return true
		}
	}
	return false
}
