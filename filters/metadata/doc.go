// Package metadata splices per-upstream metadata into the items of a
// one-to-many response at the wire level, without decoding the messages,
// and holds the "headers" filter, which edits request and response headers
// (see Header mutation below).
//
// When a call fans out to several upstreams, the client must be able to tell
// which item came from which upstream, and which upstream failed. Talos'
// answer, which this package follows by default, is a metadata message in
// field 1 of every item:
//
//	message Metadata {
//	  string hostname = 1;           // the upstream that produced the item
//	  string error = 2;              // set in an error item
//	  google.rpc.Status status = 3;  // set in an error item
//	}
//
// A unary (or client-streaming) response holds its items in a repeated
// field, by default field 1; each upstream's response is rewritten entry by
// entry and the results are concatenated into one response. A message of a
// server stream is one item. An upstream that failed contributes one error
// item: an item holding only its metadata.
//
// # Wire layout
//
// Protobuf merges repeated occurrences of a message field, so appending a
// length-delimited metadata field to a serialized item sets the item's
// metadata without touching, or even parsing, the rest of it. An entry of a
// unary response from upstream "node-a" becomes:
//
//	upstream:  [tag 1|LEN][len n    ][item: n bytes                  ]
//	spliced:   [tag 1|LEN][len n+m  ][item: n bytes][metadata: m bytes]
//	                                                 │
//	   metadata field (MetadataFieldSize = m bytes)  ▼
//	   [tag 1|LEN][len k][tag 1|LEN][len 6]"node-a"   hostname
//	                     [tag 2|LEN][len e]"..."      error   (error items)
//	                     [tag 3|LEN][len s]Status     status  (error items)
//
// Only the entries' tags and lengths are rewritten; the item bytes are
// copied unchanged, and fields of the response other than the items field
// are dropped. If an item already has metadata, the appended field is merged
// into it by the decoder: the fields set here win, the others stay.
//
// Every field number is configurable through a [Layout]; the zero Layout is
// the Talos one above. The Append functions take a destination slice and,
// given enough capacity (each has a Size function), do not allocate.
// [Items] and [ReadMetadata] read a merged response back, for clients and
// tests.
//
// # Header mutation
//
// The "headers" filter ([NewHeaders], configured by [HeadersConfig] and
// registered under that name for config files) edits the headers of a call,
// like Envoy's header_mutation: the request headers sent upstream, and the
// response headers and trailers sent to the client. Each side is a list of
// operations applied in order: add (append a value), set (replace the
// values), remove, and rename (move the values to another key).
//
//	request:
//	  - remove: {key: authorization}
//	  - remove: {key: x-user}          # a client's own x-user never passes,
//	  - set: {key: x-user, claim: sub} # even when the claim is missing
//	  - set: {key: x-tenant, claim: tenant, default: public}
//	  - add: {key: x-forwarded-client, from: peer}
//	  - rename: {key: x-trace, to: x-request-id}
//	response:
//	  - set: {key: x-request-id, header: x-request-id}
//	trailers:
//	  - remove: {key: x-debug}
//
// A value is a literal (value), a claim of the caller's verified credentials
// ([pipeline.ClaimsKey], set by an authenticating filter earlier in the
// chain), a request header as the client sent it (header), or a value of
// the call (from: peer, authority or method); Go code can compute one with a
// [ValueFunc], e.g. from per-call state ([StateString]). A value the call
// lacks takes the operation's default, or skips the operation.
//
// Validation rejects, with the path of the field, any operation on a key the
// proxy or gRPC owns: pseudo-headers (":authority"), hop-by-hop keys (te,
// content-type, user-agent, …), every "grpc-" key (grpc-timeout,
// grpc-status-details-bin, …), setting x-manifold-* keys anywhere but on
// the request side, malformed keys, and literal values that a text header
// cannot carry:
//
//	request[2].set.key: "grpc-timeout" is reserved
//
// The filter is header-only: it never sees messages, so a chain of header
// filters needs no message handling. It edits call.Header and never the
// client's view, call.Inbound.
package metadata
