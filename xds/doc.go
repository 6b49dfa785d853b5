// Package xds lets Manifold's clusters take xds:/// targets: upstream
// endpoints, routes and load balancing sent by an xDS control plane (Istio's
// istiod, a go-control-plane server, Traffic Director).
//
// Importing the package for its side effect registers grpc-go's xDS
// resolver, its load-balancing policies and its HTTP filters (the blank
// import of [google.golang.org/grpc/xds]):
//
//	import _ "github.com/manifold-grpc/manifold/xds"
//
// It is a package of its own because grpc-go's xDS support is large (the
// Envoy API types, CEL, RBAC, ring hash, outlier detection, RLS): binaries
// that do not import it do not carry it. Without it an xds:/// target is not
// understood.
//
// With it, a cluster is simply
//
//	clusters:
//	  - name: users
//	    target: xds:///users.prod.svc.cluster.local:9090
//
// and grpc-go does the rest, exactly as for a proxyless gRPC client: it asks
// the management server for the Listener named by the target (its
// HttpConnectionManager API listener with an inline or RDS
// RouteConfiguration), the Clusters the routes name, and each EDS cluster's
// ClusterLoadAssignment, and balances every call over the endpoints it was
// given. Updates are pushed by the control plane and applied while calls
// run: a call in flight keeps its connection, later calls go to the new
// endpoints. Manifold's own route rules still choose the cluster; the xDS
// route configuration then chooses among the xDS clusters behind it.
//
// # Bootstrap
//
// grpc-go finds the management server through its standard bootstrap,
// named by one of two environment variables read when the process starts:
//
//   - GRPC_XDS_BOOTSTRAP: the path of a bootstrap JSON file (Istio's agent
//     writes one and sets the variable for proxyless gRPC);
//   - GRPC_XDS_BOOTSTRAP_CONFIG: the bootstrap JSON itself.
//
// The file wins when both are set. A minimal bootstrap:
//
//	{
//	  "node": {"id": "manifold-0", "locality": {"zone": "eu-west-1a"}},
//	  "xds_servers": [{
//	    "server_uri": "istiod.istio-system.svc:15010",
//	    "channel_creds": [{"type": "insecure"}],
//	    "server_features": ["xds_v3"]
//	  }]
//	}
//
// grpc-go captures both variables when the process starts and reads the
// bootstrap when the first xds:/// connection starts; it keeps one xDS
// client (one ADS stream) per target while a connection to it is open.
// [CheckBootstrap] reports what grpc-go would otherwise only report to the
// first call: that neither variable is set, or that the bootstrap is
// unreadable or incomplete. Importing this package registers it with the
// config loader, so a config file with an xds:/// target fails to load,
// naming the field, without a usable bootstrap.
package xds
