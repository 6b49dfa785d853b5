package methodkind_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/manifold-grpc/manifold/methodkind"
)

// testServiceKinds are the kinds of grpc-go's interop TestService.
var testServiceKinds = map[string]methodkind.Kind{
	"/grpc.testing.TestService/EmptyCall":           methodkind.Unary,
	"/grpc.testing.TestService/UnaryCall":           methodkind.Unary,
	"/grpc.testing.TestService/StreamingInputCall":  methodkind.ClientStreaming,
	"/grpc.testing.TestService/StreamingOutputCall": methodkind.ServerStreaming,
	"/grpc.testing.TestService/FullDuplexCall":      methodkind.BidiStreaming,
}

// fileSet returns a FileDescriptorSet of fd and, if withImports, everything
// it imports, dependencies first, as protoc --include_imports writes it.
func fileSet(fd protoreflect.FileDescriptor, withImports bool) *descriptorpb.FileDescriptorSet {
	set := new(descriptorpb.FileDescriptorSet)
	seen := make(map[string]bool)
	var add func(fd protoreflect.FileDescriptor)
	add = func(fd protoreflect.FileDescriptor) {
		if seen[fd.Path()] {
			return
		}
		seen[fd.Path()] = true
		if withImports {
			imports := fd.Imports()
			for i := range imports.Len() {
				add(imports.Get(i).FileDescriptor)
			}
		}
		set.File = append(set.File, protodesc.ToFileDescriptorProto(fd))
	}
	add(fd)
	return set
}

// writeSet writes set to a temp file and returns its path.
func writeSet(t *testing.T, set *descriptorpb.FileDescriptorSet) string {
	t.Helper()
	data, err := proto.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "test.binpb")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func checkTestServiceKinds(t *testing.T, r methodkind.Resolver) {
	t.Helper()
	for method, want := range testServiceKinds {
		got, err := r.Kind(context.Background(), method)
		if err != nil || got != want {
			t.Errorf("Kind(%s) = %v, %v; want %v", method, got, err, want)
		}
	}
	for _, method := range []string{"/grpc.testing.TestService/NoSuchCall", "/grpc.testing.NoSuchService/UnaryCall", "UnaryCall"} {
		if got, err := r.Kind(context.Background(), method); err != nil || got != methodkind.Unknown {
			t.Errorf("Kind(%s) = %v, %v; want unknown", method, got, err)
		}
	}
}

func TestProtosetTestService(t *testing.T) {
	t.Parallel()
	set := fileSet(testgrpc.File_grpc_testing_test_proto, true)
	if len(set.File) < 3 {
		t.Fatalf("set has %d files, want test.proto and its imports", len(set.File))
	}
	p, err := methodkind.LoadProtoset(writeSet(t, set))
	if err != nil {
		t.Fatal(err)
	}
	checkTestServiceKinds(t, p)

	methods := p.Methods()
	if !slices.IsSorted(methods) {
		t.Errorf("Methods() not sorted: %q", methods)
	}
	for method := range testServiceKinds {
		if !slices.Contains(methods, method) {
			t.Errorf("Methods() lacks %s", method)
		}
	}
	if !slices.Contains(methods, "/grpc.testing.UnimplementedService/UnimplementedCall") {
		t.Errorf("Methods() lacks the second service of test.proto: %q", methods)
	}
}

func TestProtosetWithoutImports(t *testing.T) {
	t.Parallel()
	set := fileSet(testgrpc.File_grpc_testing_test_proto, false)
	if len(set.File) != 1 {
		t.Fatalf("set has %d files, want 1", len(set.File))
	}
	if _, err := protodesc.NewFiles(set); err == nil {
		t.Fatal("protodesc.NewFiles linked a set without imports; the test needs one that does not")
	}
	p, err := methodkind.NewProtoset(set)
	if err != nil {
		t.Fatal(err)
	}
	checkTestServiceKinds(t, p)
}

func TestProtosetConflictingFiles(t *testing.T) {
	t.Parallel()
	// Two files declaring one method with different kinds do not link, and
	// the raw fallback refuses to pick one.
	a := protodesc.ToFileDescriptorProto(testgrpc.File_grpc_testing_test_proto)
	b := proto.Clone(a).(*descriptorpb.FileDescriptorProto)
	b.Name = proto.String("copy.proto")
	b.Service[0].Method[1].ServerStreaming = proto.Bool(true)
	_, err := methodkind.NewProtoset(&descriptorpb.FileDescriptorSet{File: []*descriptorpb.FileDescriptorProto{a, b}})
	if err == nil || !strings.Contains(err.Error(), "copy.proto") {
		t.Errorf("NewProtoset(conflicting) = %v, want an error naming copy.proto", err)
	}
}

func TestLoadProtosetErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	noServices, err := proto.Marshal(fileSet(testgrpc.File_grpc_testing_messages_proto, true))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "missing.binpb"), "no such file"},
		{"garbage", write("garbage.binpb", []byte{0xff, 0xff, 0xff, 0xff}), "not a binary FileDescriptorSet"},
		{"text", write("text.binpb", []byte("hello, not a descriptor set\n")), ""},
		{"empty", write("empty.binpb", nil), "no services"},
		{"no services", write("messages.binpb", noServices), "no services"},
	}
	for _, tt := range tests {
		p, err := methodkind.LoadProtoset(tt.path)
		if err == nil {
			t.Errorf("%s: LoadProtoset = %v, nil; want an error", tt.name, p.Methods())
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, tt.path) || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: error %q, want the path and %q", tt.name, msg, tt.want)
		}
	}
}
