package discovery

import "google.golang.org/grpc/resolver"

// nameKey is the attribute key of a member's name.
type nameKey struct{}

// WithName returns a copy of addr that names its member name. A resolver of
// one's own sets it so that members get names other than their addresses;
// [FileBuilder]'s resolver does.
func WithName(addr resolver.Address, name string) resolver.Address {
	addr.Attributes = addr.Attributes.WithValue(nameKey{}, name)
	return addr
}

// Name returns the name that [WithName] gave addr, or "".
func Name(addr resolver.Address) string {
	n, _ := addr.Attributes.Value(nameKey{}).(string)
	return n
}
