package xds_test

import (
	"fmt"

	"google.golang.org/grpc/resolver"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/xds"
)

// Importing the package registers grpc-go's xds resolver, so a cluster may
// name an xds:/// target. Creating the cluster does not contact the
// control plane yet: that happens at the first call (or WatchReady), when
// grpc-go reads the bootstrap.
func Example() {
	fmt.Println("xds resolver registered:", resolver.Get(xds.Scheme) != nil)

	users, err := cluster.New(cluster.Config{Name: "users", Target: "xds:///users.prod.svc.cluster.local:9090"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer users.Close()
	fmt.Println("cluster:", users.Name(), users.Conn().CanonicalTarget())
	// Output:
	// xds resolver registered: true
	// cluster: users xds:///users.prod.svc.cluster.local:9090
}

// ValidateBootstrap checks the bootstrap a deployment writes before grpc-go
// reads it.
func ExampleValidateBootstrap() {
	err := xds.ValidateBootstrap([]byte(`{
	  "node": {"id": "manifold-0"},
	  "xds_servers": [{"server_uri": "istiod.istio-system.svc:15010", "channel_creds": [{"type": "mtls"}]}]
	}`))
	fmt.Println(err)
	// Output:
	// xds_servers[0].channel_creds: no supported type among "mtls" (want insecure, tls or google_default)
}
