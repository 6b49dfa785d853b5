// Package logging is the access log: one record per call, written with
// [log/slog] or handed to a go-grpc-middleware v2 [logging.Logger].
//
// The filter is header-only. Its request header hook notes the start time
// in the call's state and its response end hook writes the record; the
// message and byte counts come from the counters that [server.Server] keeps
// as messages pass its stream ([pipeline.CountersFromContext]), so a chain
// with the access log still forwards messages untouched and reports that it
// needs none.
//
// Records go to the process's slog logger, or with [Config.Output] to a
// file, standard output or standard error of their own, buffered and
// written every [Config.FlushInterval] (one system call per batch instead of
// one per call).
//
// Put it first in the chain: its end hook then sees the status the client
// receives, including local replies of every later filter, upstream
// failures and panics, and the claims and upstream results that later
// filters and the terminal stored in the call.
//
// # Record
//
// The message is "finished call" ([Config.Message]); the attributes, in this
// order, are (see the Key constants):
//
//	grpc.full_method        /pkg.Service/Method
//	grpc.service            pkg.Service
//	grpc.method             Method
//	grpc.code               OK, NotFound, Unavailable, … (grpc-go's names)
//	grpc.error              status message, for codes other than OK
//	grpc.time_ms            duration in milliseconds, a decimal string ("0.84")
//	peer.address            client ip:port
//	grpc.authority          :authority
//	grpc.user_agent         user-agent
//	grpc.request.messages   messages and uncompressed bytes each way
//	grpc.request.bytes        (left out outside server.Server)
//	grpc.response.messages
//	grpc.response.bytes
//	manifold.route          route name, with a router
//	upstream                group {cluster, code, time_ms}: one-to-one
//	upstreams               [Upstreams]: fan-out, one entry per member
//	trace_id, span_id       OpenTelemetry span in the call's context
//	auth.subject            "sub" of the verified claims
//	grpc.request.metadata   group {key: value} of the listed headers
//
// Attributes with nothing to say are left out rather than logged empty.
// A one-to-one record in [slog.TextHandler] form:
//
//	level=INFO msg="finished call" grpc.full_method=/grpc.testing.TestService/UnaryCall
//	grpc.service=grpc.testing.TestService grpc.method=UnaryCall grpc.code=OK
//	grpc.time_ms=0.84 peer.address=127.0.0.1:52814 grpc.authority=proxy:443
//	grpc.user_agent=grpc-go/1.85.0 grpc.request.messages=1 grpc.request.bytes=9
//	grpc.response.messages=1 grpc.response.bytes=9 upstream.cluster=backend
//	upstream.code=OK upstream.time_ms=0.61 grpc.request.metadata.x-request-id=r-17
//
// # Levels
//
// The level follows the status code ([DefaultLevel]): OK and the errors a
// client causes (Canceled, InvalidArgument, NotFound, AlreadyExists,
// PermissionDenied, ResourceExhausted, FailedPrecondition, OutOfRange,
// Unauthenticated) at info; the errors of the server or its upstreams
// (Unknown, DeadlineExceeded, Aborted, Unimplemented, Internal,
// Unavailable, DataLoss, and any code above 16) at error. [Config.Levels]
// overrides single codes. A record whose level the logger does not enable
// costs one check.
//
// # Metadata and secrets
//
// Only the request metadata keys that [Config.Headers] lists are logged.
// Credentials never are: authorization, proxy-authorization, cookie,
// set-cookie and the keys of [Config.SecretHeaders] cannot be listed
// ([Config.Validate] rejects the config), and nothing else reads the
// metadata.
//
// # Sinks
//
// [New] logs to a [slog.Logger] ([WithLogger], default [slog.Default]; a
// config file's filter logs to the server's logger). [NewWithLogger] hands
// the same record to a go-grpc-middleware v2 [logging.Logger] as flat
// fields, so teams keep their logger and its adapter.
//
// The filter registers itself as "logging" ([pipeline.Register]); its
// [Config] is the configuration a config file decodes into.
//
// [server.Server]: https://pkg.go.dev/github.com/manifold-grpc/manifold/server#Server
// [logging.Logger]: https://pkg.go.dev/github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging#Logger
package logging
