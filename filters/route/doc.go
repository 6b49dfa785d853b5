// Package route is the one-to-one terminal: it forwards each call to one
// [cluster.Cluster] as a bidirectional stream of raw frames, whatever the
// method's real kind, and relays the response headers, messages, trailers
// and status back through the chain unchanged.
//
// What a demanding client expects of a transparent proxy, and this terminal
// does:
//   - the upstream sees the request metadata (minus hop-by-hop keys), the
//     content-subtype, the compressor and the deadline the client used;
//   - response headers are sent as soon as the upstream sends them, also when
//     the upstream then fails without sending a message; a trailers-only
//     upstream answer stays trailers-only;
//   - status code, message and details and the trailers pass unchanged;
//   - cancellation travels both ways: a client that goes away cancels the
//     upstream stream, a filter that ends the call cancels it too;
//   - frames move one at a time in each direction, so grpc-go's flow control
//     makes a slow reader on either side slow the other, with no unbounded
//     buffering;
//   - an upstream that cannot be reached fails the call with UNAVAILABLE
//     (grpc-go fails fast; the cluster's connect timeout bounds an attempt).
package route
