package methodkind

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Protoset is a [Resolver] over the services of a descriptor set: the
// google.protobuf.FileDescriptorSet written by
// "protoc --include_imports --descriptor_set_out=FILE" or "buf build -o
// FILE.binpb". It knows every method of every service in the set, from a map
// built once at load; it is immutable and safe for concurrent use, and its
// Kind never returns an error.
type Protoset struct {
	kinds map[string]Kind // full method "/pkg.Svc/M" → kind
}

// LoadProtoset reads a binary FileDescriptorSet from path. Errors name the
// file. See [NewProtoset].
func LoadProtoset(path string) (*Protoset, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("methodkind: protoset: %w", err)
	}
	set := new(descriptorpb.FileDescriptorSet)
	if err := proto.Unmarshal(data, set); err != nil {
		return nil, fmt.Errorf("methodkind: protoset %s: not a binary FileDescriptorSet: %w", path, err)
	}
	p, err := newProtoset(set)
	if err != nil {
		return nil, fmt.Errorf("methodkind: protoset %s: %w", path, err)
	}
	return p, nil
}

// NewProtoset builds a Protoset from set.
//
// The set is first linked with [protodesc.NewFiles], which checks it. A set
// that does not link, typically one written without --include_imports, is
// still accepted: the services are then read straight from the raw
// FileDescriptorProtos, whose method flags are all a kind needs. A set
// without any service is an error (it is most likely the wrong file).
func NewProtoset(set *descriptorpb.FileDescriptorSet) (*Protoset, error) {
	p, err := newProtoset(set)
	if err != nil {
		return nil, fmt.Errorf("methodkind: protoset: %w", err)
	}
	return p, nil
}

func newProtoset(set *descriptorpb.FileDescriptorSet) (*Protoset, error) {
	kinds, err := linkedKinds(set)
	if err != nil {
		kinds, err = rawKinds(set.GetFile())
		if err != nil {
			return nil, err
		}
	}
	if len(kinds) == 0 {
		return nil, fmt.Errorf("no services in %d files", len(set.GetFile()))
	}
	return &Protoset{kinds: kinds}, nil
}

// linkedKinds reads the methods of a set that links with protodesc.
func linkedKinds(set *descriptorpb.FileDescriptorSet) (map[string]Kind, error) {
	files, err := protodesc.NewFiles(set)
	if err != nil {
		return nil, err
	}
	kinds := make(map[string]Kind)
	for _, fp := range set.GetFile() {
		fd, err := files.FindFileByPath(fp.GetName())
		if err != nil {
			return nil, err
		}
		svcs := fd.Services()
		for i := range svcs.Len() {
			svc := svcs.Get(i)
			methods := svc.Methods()
			for j := range methods.Len() {
				m := methods.Get(j)
				kinds["/"+string(svc.FullName())+"/"+string(m.Name())] = FromDesc(m.IsStreamingClient(), m.IsStreamingServer())
			}
		}
	}
	return kinds, nil
}

// rawKinds reads the methods of files without linking them. Two files that
// give one method different kinds are an error.
func rawKinds(files []*descriptorpb.FileDescriptorProto) (map[string]Kind, error) {
	kinds := make(map[string]Kind)
	for _, fp := range files {
		svcKinds, err := serviceKinds(fp)
		if err != nil {
			return nil, err
		}
		for method, k := range svcKinds {
			if old, ok := kinds[method]; ok && old != k {
				return nil, fmt.Errorf("%s: method %s is %s in another file", fp.GetName(), method, old)
			}
			kinds[method] = k
		}
	}
	return kinds, nil
}

// serviceKinds returns the kind of every method of every service of fp, by
// full method name.
func serviceKinds(fp *descriptorpb.FileDescriptorProto) (map[string]Kind, error) {
	kinds := make(map[string]Kind)
	for _, sp := range fp.GetService() {
		if sp.GetName() == "" {
			return nil, fmt.Errorf("%s: service without a name", fp.GetName())
		}
		svc := serviceName(fp.GetPackage(), sp.GetName())
		for _, m := range sp.GetMethod() {
			if m.GetName() == "" {
				return nil, fmt.Errorf("%s: service %s: method without a name", fp.GetName(), svc)
			}
			kinds["/"+svc+"/"+m.GetName()] = FromDesc(m.GetClientStreaming(), m.GetServerStreaming())
		}
	}
	return kinds, nil
}

// serviceName returns a service's full name in package pkg.
func serviceName(pkg, name string) string {
	if pkg == "" {
		return name
	}
	return pkg + "." + name
}

// Kind returns the kind of fullMethod, or [Unknown] if the set does not have
// it. The error is always nil.
func (p *Protoset) Kind(_ context.Context, fullMethod string) (Kind, error) {
	return p.kinds[fullMethod], nil
}

// Methods returns the full names of all methods in the set, sorted.
func (p *Protoset) Methods() []string {
	return slices.Sorted(maps.Keys(p.kinds))
}

func (*Protoset) source() string { return "protoset" }

var (
	_ Resolver = (*Protoset)(nil)
	_ sourcer  = (*Protoset)(nil)
)
