package clusterpb_test

import (
	"testing"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/manifold-grpc/manifold/internal/clusterpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestMetadataLayout pins the Talos common.Metadata layout that
// filters/metadata writes by default.
func TestMetadataLayout(t *testing.T) {
	t.Parallel()
	fields := (&clusterpb.Metadata{}).ProtoReflect().Descriptor().Fields()
	for _, want := range []struct {
		name    protoreflect.Name
		num     protoreflect.FieldNumber
		kind    protoreflect.Kind
		message protoreflect.FullName
	}{
		{"hostname", 1, protoreflect.StringKind, ""},
		{"error", 2, protoreflect.StringKind, ""},
		{"status", 3, protoreflect.MessageKind, "google.rpc.Status"},
	} {
		f := fields.ByName(want.name)
		if f == nil || f.Number() != want.num || f.Kind() != want.kind || f.Cardinality() != protoreflect.Optional {
			t.Errorf("Metadata.%s = %v, want number %d kind %v", want.name, f, want.num, want.kind)
			continue
		}
		if want.message != "" && f.Message().FullName() != want.message {
			t.Errorf("Metadata.%s is a %s, want %s", want.name, f.Message().FullName(), want.message)
		}
	}
	if got := fields.Len(); got != 3 {
		t.Errorf("Metadata has %d fields, want 3", got)
	}
}

// TestItems checks that every item has its Metadata in field 1 and every
// unary response its items in repeated field 1.
func TestItems(t *testing.T) {
	t.Parallel()
	for _, m := range []protoreflect.ProtoMessage{&clusterpb.Version{}, &clusterpb.LogLine{}, &clusterpb.EchoItem{}} {
		f := m.ProtoReflect().Descriptor().Fields().ByNumber(1)
		if f == nil || f.Message() == nil || f.Message().FullName() != "manifold.cluster.v1.Metadata" {
			t.Errorf("%T field 1 = %v, want Metadata", m, f)
		}
	}
	for _, m := range []protoreflect.ProtoMessage{&clusterpb.VersionResponse{}, &clusterpb.EchoResponse{}} {
		f := m.ProtoReflect().Descriptor().Fields().ByNumber(1)
		if f == nil || !f.IsList() || f.Kind() != protoreflect.MessageKind {
			t.Errorf("%T field 1 = %v, want a repeated message", m, f)
		}
	}
}

func TestService(t *testing.T) {
	t.Parallel()
	sd := clusterpb.File_cluster_proto.Services().ByName("Machine")
	if sd == nil {
		t.Fatal("no Machine service")
	}
	for _, want := range []struct {
		name           protoreflect.Name
		client, server bool
	}{
		{"Version", false, false},
		{"Logs", false, true},
		{"Upload", true, false},
		{"Chat", true, true},
	} {
		m := sd.Methods().ByName(want.name)
		if m == nil || m.IsStreamingClient() != want.client || m.IsStreamingServer() != want.server {
			t.Errorf("method %s = %v, want client streaming %v, server streaming %v", want.name, m, want.client, want.server)
		}
	}
	if got := clusterpb.Machine_ServiceDesc.ServiceName; got != "manifold.cluster.v1.Machine" {
		t.Errorf("service name %q", got)
	}
}
