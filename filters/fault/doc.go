// Package fault is the "fault" filter: it injects delays and errors into
// calls, like Envoy's fault filter, to test how clients and services
// behave when an upstream is slow or failing.
//
// A delay holds the call before it goes upstream; the client's
// cancellation or deadline ends the wait, with CANCELLED or
// DEADLINE_EXCEEDED. An abort answers the call with the configured status
// instead of sending it upstream: the upstream never sees it. When both
// apply, the delay comes first. Each applies to percent of the calls
// (100 when unset), drawn independently per call.
//
// With header_control, only calls that ask for a fault get one: a call
// with the request header x-manifold-fault-delay (a duration such as
// "250ms") is delayed by that much, and one with x-manifold-fault-abort (a
// code name such as "UNAVAILABLE", or a number) is aborted with that code;
// the delay and abort sections then only set the percent and the abort
// message. A malformed header value ends the call with INVALID_ARGUMENT.
// The headers are never forwarded upstream. A client can then slow down
// or fail its own calls, and only those: enable header_control where that
// is acceptable, such as test environments.
//
// The filter only looks at request headers.
package fault
