package xds_test

import (
	"context"
	"net"
	"strconv"
	"sync"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// nodeID is the node id in the test bootstrap; the snapshot cache keys its
// snapshots by it.
const nodeID = "manifold-xds-test"

// controlPlane is an in-process xDS management server: go-control-plane's
// ADS server over its snapshot cache. Every push sends all resources set so
// far as a new snapshot version, as a real control plane would.
type controlPlane struct {
	cache cachev3.SnapshotCache

	mu        sync.Mutex
	version   int
	resources map[resourcev3.Type]map[string]types.Resource
}

// startControlPlane serves ADS on lis until the test ends.
func startControlPlane(t *testing.T, lis net.Listener) *controlPlane {
	t.Helper()
	// ads=false: answer a request with the named resources that exist, so
	// that a Listener that does not exist is reported as missing at once
	// instead of after grpc-go's watch timeout.
	cp := &controlPlane{
		cache:     cachev3.NewSnapshotCache(false, cachev3.IDHash{}, nil),
		resources: map[resourcev3.Type]map[string]types.Resource{},
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := grpc.NewServer()
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(srv, serverv3.NewServer(ctx, cp.cache, nil))
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		cancel()
		srv.Stop()
		<-done
	})
	return cp
}

// set adds or replaces resources (by name) without pushing them.
func (cp *controlPlane) set(typ resourcev3.Type, res ...types.Resource) {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.resources[typ] == nil {
		cp.resources[typ] = map[string]types.Resource{}
	}
	for _, r := range res {
		cp.resources[typ][cachev3.GetResourceName(r)] = r
	}
}

// push sends everything set so far as the next snapshot version.
func (cp *controlPlane) push(t *testing.T) {
	t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	cp.version++
	all := map[resourcev3.Type][]types.Resource{}
	for typ, byName := range cp.resources {
		for _, r := range byName {
			all[typ] = append(all[typ], r)
		}
	}
	snap, err := cachev3.NewSnapshot(strconv.Itoa(cp.version), all)
	if err != nil {
		t.Fatal(err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), nodeID, snap); err != nil {
		t.Fatal(err)
	}
}

// service sets the resources of one xDS service as a control plane
// describes a proxyless gRPC service: the Listener named by the target
// (an HttpConnectionManager API listener whose route configuration is
// inline or fetched with RDS), the RouteConfiguration sending every call to
// one Cluster, the EDS Cluster, and its ClusterLoadAssignment with addrs in
// one locality.
func (cp *controlPlane) service(t *testing.T, name string, inlineRoutes bool, addrs ...string) {
	t.Helper()
	routeName, clusterName := name+"-route", name+"-cluster"
	routes := &routev3.RouteConfiguration{
		Name: routeName,
		VirtualHosts: []*routev3.VirtualHost{{
			Name:    name,
			Domains: []string{name},
			Routes: []*routev3.Route{{
				Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: clusterName}}},
			}},
		}},
	}
	hcm := &hcmv3.HttpConnectionManager{
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       "router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
		}},
	}
	if inlineRoutes {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: routes}
	} else {
		hcm.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: routeName,
		}}
		cp.set(resourcev3.RouteType, routes)
	}
	cp.set(resourcev3.ListenerType, &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(t, hcm)},
	})
	cp.set(resourcev3.ClusterType, &clusterv3.Cluster{
		Name:                 clusterName,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		LbPolicy:             clusterv3.Cluster_ROUND_ROBIN,
	})
	cp.endpoints(t, name, addrs...)
}

// endpoints sets the endpoints of the service's cluster.
func (cp *controlPlane) endpoints(t *testing.T, name string, addrs ...string) {
	t.Helper()
	var lbEndpoints []*endpointv3.LbEndpoint
	for _, a := range addrs {
		host, portText, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.ParseUint(portText, 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		lbEndpoints = append(lbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
					Protocol:      corev3.SocketAddress_TCP,
					Address:       host,
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
				}}},
			}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		})
	}
	cp.set(resourcev3.EndpointType, &endpointv3.ClusterLoadAssignment{
		ClusterName: name + "-cluster",
		Endpoints: []*endpointv3.LocalityLbEndpoints{{
			Locality:            &corev3.Locality{Region: "test", Zone: "test-a"},
			LbEndpoints:         lbEndpoints,
			LoadBalancingWeight: wrapperspb.UInt32(1),
		}},
	})
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
