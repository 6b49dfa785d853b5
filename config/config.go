package config

import (
	"time"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/fanout"
	"github.com/manifold-grpc/manifold/filters/metadata"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/router"
)

// Config is a whole configuration file.
type Config struct {
	// Listeners are the addresses the proxy serves gRPC on. At least one.
	Listeners []Listener `yaml:"listeners"`
	// Admin is the HTTP admin listener (/healthz, /readyz, /config); off
	// when its address is empty.
	Admin Admin `yaml:"admin"`
	// Clusters are the upstreams of one-to-one routes.
	Clusters []Cluster `yaml:"clusters"`
	// Fanout are the groups of one-to-many routes.
	Fanout []FanoutGroup `yaml:"fanout"`
	// Filters is the global chain, run before every route's own filters,
	// outermost first.
	Filters []Filter `yaml:"filters"`
	// Routes are tried in order; the first match serves the call. A call
	// that matches none gets UNIMPLEMENTED.
	Routes []Route `yaml:"routes"`
	// DrainTimeout is how long calls in flight may take to finish on
	// shutdown before they are cancelled. Default 30s.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// Log sets the process's log output; the command line's --log-level
	// and --log-format apply when it is not set.
	Log *Log `yaml:"log"`

	// Source is the file's text for display (the admin /config endpoint):
	// as written, before environment expansion, with values of
	// secret-looking fields replaced by <redacted>.
	Source []byte `yaml:"-"`
}

// Log is the process's log output.
type Log struct {
	// Level is debug, info, warn or error. Default info.
	Level string `yaml:"level"`
	// Format is text or json. Default text.
	Format string `yaml:"format"`
}

// Listener is one gRPC listening address.
type Listener struct {
	// Address is host:port to listen on.
	Address string `yaml:"address"`
	// TLS, when set, serves TLS (mutual TLS with client_ca_file).
	TLS *ServerTLS `yaml:"tls"`
	// MaxMessageSize is the largest message accepted and sent, in bytes.
	// Default 64 MiB.
	MaxMessageSize int `yaml:"max_message_size"`
	// ForwardedFor appends the client's address to x-forwarded-for.
	// Default true.
	ForwardedFor *bool `yaml:"forwarded_for"`
	// Keepalive tunes the server's pings and the policy it enforces on
	// clients' pings.
	Keepalive *ServerKeepalive `yaml:"keepalive"`
	// MaxConcurrentStreams is how many calls one client connection may
	// have open at once; 0 means no limit. Default 1000. A grpc-go client
	// at the limit waits for a slot (or its deadline) rather than failing.
	MaxConcurrentStreams *uint32 `yaml:"max_concurrent_streams"`
	// MaxHeaderListSize is the largest request header list accepted, in
	// bytes as HTTP/2 counts them (name + value + 32 per field). Default
	// 64 KiB. Over it, grpc-go clients fail the call with INTERNAL before
	// sending it.
	MaxHeaderListSize uint32 `yaml:"max_header_list_size"`
}

// ServerKeepalive is a listener's HTTP/2 keepalive.
type ServerKeepalive struct {
	// Time is how long a connection may be idle before the server pings
	// it. Default 2h.
	Time time.Duration `yaml:"time"`
	// Timeout is how long the server waits for the ping's answer before it
	// closes the connection. Default 20s.
	Timeout time.Duration `yaml:"timeout"`
	// MinTime is the shortest interval between client pings the server
	// accepts; clients that ping more often are disconnected. Default 10s.
	MinTime time.Duration `yaml:"min_time"`
	// PermitWithoutStream lets clients ping while they have no call open.
	// Default true.
	PermitWithoutStream *bool `yaml:"permit_without_stream"`
}

// ClientKeepalive is an upstream connection's HTTP/2 keepalive.
type ClientKeepalive struct {
	// Time is how long a connection may be idle before the proxy pings
	// the upstream; at least 10s (grpc-go's minimum).
	Time time.Duration `yaml:"time"`
	// Timeout is how long the proxy waits for the answer. Default 20s.
	Timeout time.Duration `yaml:"timeout"`
	// PermitWithoutStream pings also while no call is open.
	PermitWithoutStream bool `yaml:"permit_without_stream"`
}

// ServerTLS are a listener's certificate files.
type ServerTLS struct {
	// CertFile and KeyFile are the server's PEM certificate chain and key.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile, when set, requires and verifies client certificates
	// signed by these CAs (mutual TLS).
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth, with client_ca_file: "require" (default) or "optional"
	// (clients without a certificate may connect; put the client_cert
	// filter on the routes that need one).
	ClientAuth string `yaml:"client_auth"`
	// MinVersion is the oldest TLS version accepted: "1.2" (default) or
	// "1.3".
	MinVersion string `yaml:"min_version"`
	// ReloadInterval is how often the certificate, key and client CA files
	// are read again; changed content is used for new connections, and
	// content that does not load is refused (the old certificate stays and
	// the error is logged). Default 10s; a negative value turns reloading
	// off.
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Admin is the HTTP admin listener.
type Admin struct {
	// Address is host:port; empty turns the admin listener off.
	Address string `yaml:"address"`
}

// Cluster is an upstream of one-to-one routes.
type Cluster struct {
	// Name is how routes refer to the cluster.
	Name string `yaml:"name"`
	// Target is a grpc target URI (dns:///host:port, unix:///path,
	// passthrough:///addr) or host:port.
	Target string `yaml:"target"`
	// Addresses is a static list of host:port, balanced round-robin.
	Addresses []string `yaml:"addresses"`
	// LoadBalancing is round_robin or pick_first.
	LoadBalancing string `yaml:"load_balancing"`
	// ConnectTimeout: see cluster.Config. Default 5s.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// MaxMessageSize each way, in bytes. Default 64 MiB.
	MaxMessageSize int `yaml:"max_message_size"`
	// TLS, when set, connects with TLS.
	TLS *ClientTLS `yaml:"tls"`
	// Keepalive, when set, pings idle connections to the upstream.
	Keepalive *ClientKeepalive `yaml:"keepalive"`
	// CircuitBreakers limit the calls in flight: see
	// cluster.CircuitBreakers. Default: no limit.
	CircuitBreakers cluster.CircuitBreakers `yaml:"circuit_breakers"`
	// Retry retries failed calls to the idempotent methods it names: see
	// cluster.RetryPolicy. Default: none.
	Retry []cluster.RetryPolicy `yaml:"retry"`
	// RetryThrottling stops retries while many calls fail. Default: none.
	RetryThrottling *cluster.RetryThrottling `yaml:"retry_throttling"`
	// RetryBufferSize is the request bytes a call keeps for retries.
	// Default 256 KiB.
	RetryBufferSize int `yaml:"retry_buffer_size"`
	// Optional leaves the cluster out of readiness: /readyz does not wait
	// for it to connect. Default false.
	Optional bool `yaml:"optional"`
	// Kinds tell the kinds of the cluster's methods, first match wins, as
	// fanout[].kinds do. A call to a method known to send one request
	// (unary, server_streaming) is forwarded on one goroutine instead of
	// two (about 1 % less CPU per small unary call, docs/performance.md). A method marked unary or server_streaming that
	// streams requests would lose every request message but the first.
	// Default: none; calls take the general path, right for every kind.
	Kinds methodkind.Patterns `yaml:"kinds"`
	// Protoset is a descriptor set file (protoc --include_imports
	// --descriptor_set_out) telling method kinds, asked after kinds.
	Protoset string               `yaml:"protoset"`
	protoset *methodkind.Protoset // loaded by validation
}

// ClientTLS configures TLS to an upstream.
type ClientTLS struct {
	// CAFile verifies the upstream's certificate; empty uses the system
	// roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile, when set, present a client certificate.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked in the upstream's certificate.
	ServerName string `yaml:"server_name"`
}

// FanoutGroup is a one-to-many target.
type FanoutGroup struct {
	// Name is how routes refer to the group.
	Name string `yaml:"name"`
	// Members are the group's upstreams, in default target order.
	// Exclusive with MembersFrom.
	Members []Member `yaml:"members"`
	// MembersFrom takes the members from a grpc resolver target instead:
	// "dns:///nodes.example.svc:50000" (every address of a Kubernetes
	// headless Service is a member, named by its address) or
	// "file:///etc/manifold/nodes" (one name=host:port per line, re-read
	// every second; "?interval=5s" to change). Members come and go at run
	// time; they are ordered by name.
	MembersFrom string `yaml:"members_from"`
	// Member holds the connection settings of every member MembersFrom
	// finds.
	Member MemberConnection `yaml:"member"`
	// Refresh is how often the MembersFrom resolver is asked to resolve
	// again. Default 30s.
	Refresh time.Duration `yaml:"refresh"`
	// Kinds tell unary from streaming methods, first match wins.
	Kinds methodkind.Patterns `yaml:"kinds"`
	// Protoset is a descriptor set file telling method kinds.
	Protoset string `yaml:"protoset"`
	// Reflection asks the members' server reflection for kinds not in
	// kinds or protoset. Default true.
	Reflection *bool `yaml:"reflection"`
	// NodesKey, MaxTargets, MaxResponseSize, ReserveFraction, MinReserve,
	// UpstreamTimeout, QueueSize, HeaderWait, Policy, FailFast: see
	// fanout.Config.
	NodesKey        string          `yaml:"nodes_key"`
	MaxTargets      int             `yaml:"max_targets"`
	MaxResponseSize int             `yaml:"max_response_size"`
	ReserveFraction float64         `yaml:"reserve_fraction"`
	MinReserve      time.Duration   `yaml:"min_reserve"`
	UpstreamTimeout time.Duration   `yaml:"upstream_timeout"`
	QueueSize       int             `yaml:"queue_size"`
	HeaderWait      time.Duration   `yaml:"header_wait"`
	Policy          fanout.Policy   `yaml:"policy"`
	FailFast        bool            `yaml:"fail_fast"`
	Layout          metadata.Layout `yaml:"layout"`

	protoset *methodkind.Protoset // loaded by validation
}

// Member is one upstream of a fan-out group.
type Member struct {
	// Name identifies the member in the nodes header and the spliced
	// metadata.
	Name string `yaml:"name"`
	// Target is the member's grpc target URI or host:port.
	Target string `yaml:"target"`
	// MemberConnection: connect_timeout, max_message_size, tls and
	// keepalive, as for clusters.
	MemberConnection `yaml:",inline"`
	// Required makes /readyz wait for this member to connect. By default
	// members are optional: a fan-out answers with an error item for a
	// member that is down, so one down machine must not take the proxy out
	// of its load balancer.
	Required bool `yaml:"required"`
}

// MemberConnection are the settings of a fan-out member's connection, as
// for clusters.
type MemberConnection struct {
	ConnectTimeout time.Duration    `yaml:"connect_timeout"`
	MaxMessageSize int              `yaml:"max_message_size"`
	TLS            *ClientTLS       `yaml:"tls"`
	Keepalive      *ClientKeepalive `yaml:"keepalive"`
}

// Route sends matching calls through its filters to its terminal.
type Route struct {
	// Name identifies the route in logs and metrics.
	Name string `yaml:"name"`
	// Match selects calls; empty matches everything.
	Match router.Match `yaml:"match"`
	// Filters run after the global chain, outermost first.
	Filters []Filter `yaml:"filters"`
	// Route names the cluster that serves the calls one-to-one.
	Route string `yaml:"route"`
	// Fanout names the fan-out group that serves them one-to-many.
	Fanout string `yaml:"fanout"`
}

// Filter is one filter in a chain: a one-key mapping from a registered
// filter name to that filter's config.
type Filter struct {
	// Name is the registry name.
	Name string
	// Config is the filter's decoded, typed config.
	Config pipeline.FilterConfig
}
