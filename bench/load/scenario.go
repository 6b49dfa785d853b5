package main

import "google.golang.org/grpc/metadata"

// The proxies compared with direct calls.
const (
	proxyFloor    = "floor"
	proxyManifold = "manifold"
	proxyMwitkow  = "mwitkow"
	// proxyFanout is Manifold in --fanout mode over the three members.
	proxyFanout = "manifold-fanout"
	// proxyFilters is Manifold in config mode with the three header-only
	// built-in filters (auth, logging, tracing) in front of the same
	// backend: what they cost over Manifold's empty chain. One-to-one
	// scenarios only.
	proxyFilters = "manifold-filters"
	// proxyConfig is Manifold in config mode with an empty chain, the
	// baseline of manifold-filters.
	proxyConfig = "manifold-config"
	// direct is the client calling the backend itself.
	direct = "direct"
)

// callKind is how one operation talks to the service.
type callKind int

const (
	kindUnary    callKind = iota // BenchmarkService/UnaryCall
	kindPingPong                 // one request and its response on a long-lived StreamingCall
	kindServer                   // StreamingFromServer: one request, stream-msgs responses
)

// scenario is one load shape.
type scenario struct {
	Name  string `json:"name"`
	Title string `json:"title"`
	kind  callKind
	// ReqSize and RespSize are the payload sizes in bytes.
	ReqSize  int `json:"req_size"`
	RespSize int `json:"resp_size"`
	// InFlight is the number of concurrent operations; 0 means the -inflight
	// flag.
	InFlight int `json:"in_flight"`
	// Fanout is set for the 3-node scenarios: each operation is three
	// one-to-one calls made at once (direct and through the one-to-one
	// proxies) or one call through Manifold's fan-out.
	Fanout bool `json:"fanout"`
	// Unit names what one operation is.
	Unit string `json:"unit"`
}

// fanMembers is the size of the fan-out group.
const fanMembers = 3

// The idle-stream scenario's name; it has its own driver (idle.go).
const scenarioIdle = "idle"

var scenarios = []scenario{
	{Name: "unary-16B", Title: "unary 16 B", kind: kindUnary, ReqSize: 16, RespSize: 16, Unit: "call"},
	{Name: "bidi-16B", Title: "bidi ping-pong 16 B", kind: kindPingPong, ReqSize: 16, RespSize: 16, Unit: "message round trip"},
	{Name: "unary-64KiB", Title: "unary 64 KiB", kind: kindUnary, ReqSize: 64 << 10, RespSize: 64 << 10, Unit: "call"},
	{Name: "serial", Title: "unary 16 B, one call at a time", kind: kindUnary, ReqSize: 16, RespSize: 16, InFlight: 1, Unit: "call"},
	{Name: "fanout-unary", Title: "3-node unary fan-out 16 B", kind: kindUnary, ReqSize: 16, RespSize: 16, Fanout: true, Unit: "3 member answers"},
	{Name: "fanout-stream", Title: "3-node server-stream fan-out 16 B", kind: kindServer, ReqSize: 16, RespSize: 16, Fanout: true, Unit: "3 member streams"},
}

func scenarioNames() []string {
	var n []string
	for _, s := range scenarios {
		n = append(n, s.Name)
	}
	return append(n, scenarioIdle)
}

// target is what a run drives: direct calls or one proxy.
type target struct {
	// Name is the column name: "direct", a proxy, with " ×3" for three
	// one-to-one calls per operation in the fan-out scenarios.
	Name string
	// proxy is the proxy's short name ("" for direct).
	proxy string
	// addrs are the addresses the client dials, one connection each;
	// operation i of a group of three uses addrs[i % len(addrs)].
	addrs []string
	// calls is the number of calls one operation makes at once.
	calls int
	// answers is the number of members that answer one call (3 through
	// the fan-out, else 1).
	answers int
	// p is the proxy process whose CPU and memory are measured; nil for
	// direct.
	p *proc
	// md is request metadata every call sends (the bearer token for
	// manifold-filters).
	md metadata.MD
}
