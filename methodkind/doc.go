// Package methodkind tells the call kind of a gRPC method — unary, client
// streaming, server streaming or bidirectional streaming — to a proxy that
// does not otherwise know it.
//
// # Why a proxy must ask
//
// A transparent proxy forwards every call as a bidirectional stream of raw
// frames. On the wire the kinds look alike: a unary call is a stream on which
// the client sends one message and half-closes, and the server answers one
// message and the status; a bidi call can do exactly the same. Forwarding
// one-to-one, the proxy never needs to know. Some terminals do: the
// one-to-many (fan-out) terminal merges the answers of several upstreams
// into one message for unary and client-streaming methods, and interleaves
// them into a stream for server-streaming and bidi methods. Guessing wrong
// breaks the call either way — N messages sent to a unary client are a
// protocol error, and a stream merged into one message changes its type and
// waits for every upstream to finish — so a method whose kind cannot be
// learnt is refused ([Require], [google.golang.org/grpc/codes.Unimplemented])
// rather than guessed.
//
// # Where kinds come from
//
// Kinds come from three sources, asked in this order by [Chain]:
//
//  1. [Patterns]: rules in the proxy's config ("/pkg.Svc/*" is
//     server_streaming). They are explicit, cost nothing, and override the
//     other sources, so an operator can fix a wrong or missing answer.
//  2. [Protoset]: a descriptor set file (protoc --include_imports
//     --descriptor_set_out, or buf build -o x.binpb) loaded at start. Exact
//     for the services it holds, with no network traffic.
//  3. [Reflection]: the upstreams' gRPC server reflection service, asked once
//     per service and cached. It needs nothing configured, but the upstream
//     must offer reflection and be reachable; its answers come at run time.
//
// All sources implement [Resolver], which returns [Unknown] and a nil error
// when it simply does not know; [Chain] takes the first answer that is not
// [Unknown]; [Require] turns [Unknown] into a gRPC status error for the
// caller.
//
//	kinds := methodkind.Chain(patterns, protoset, methodkind.NewReflection(conns))
//	kind, err := methodkind.Require(ctx, kinds, call.Method)
//	if err != nil {
//		return err // codes.Unimplemented, naming the method and the sources
//	}
//	if kind.ServerStreams() { /* interleave */ } else { /* merge */ }
package methodkind
