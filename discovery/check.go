package discovery

import (
	"fmt"
	"net/url"

	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/serviceconfig"
)

// Check reports what is wrong with target before anything is watched, so
// that a config loader can refuse it at load time: a target that does not
// parse, a scheme no resolver serves, and for "file:" targets everything
// the file resolver would refuse (parameters, a missing file, a bad line).
// It resolves nothing over the network.
func Check(target string) error {
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	if u.Scheme == "" {
		return fmt.Errorf("%q has no scheme: want dns:///host:port, file:///path or another resolver's target", target)
	}
	if u.Scheme == "xds" {
		// grpc-go's xds resolver hands out routing and a balancer, not a
		// list of addresses a group could take as members.
		return fmt.Errorf("%q: xds targets do not list members; use dns:/// or file:///", target)
	}
	b := builderFor(u.Scheme, nil)
	if b == nil {
		return fmt.Errorf("%q: no resolver for scheme %q", target, u.Scheme)
	}
	if u.Scheme != FileScheme {
		return nil
	}
	r, err := b.Build(resolver.Target{URL: *u}, discardState{}, resolver.BuildOptions{DisableServiceConfig: true})
	if err != nil {
		return err
	}
	r.Close()
	return nil
}

// discardState is a resolver.ClientConn that drops what it is told.
type discardState struct{}

func (discardState) UpdateState(resolver.State) error { return nil }
func (discardState) ReportError(error)                {}
func (discardState) NewAddress([]resolver.Address)    {}
func (discardState) ParseServiceConfig(string) *serviceconfig.ParseResult {
	return &serviceconfig.ParseResult{}
}

var _ resolver.ClientConn = discardState{}
