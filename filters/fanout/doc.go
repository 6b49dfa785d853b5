// Package fanout is the one-to-many terminal: one call in, N upstream
// members answer, one merged answer out, and one failing member never fails
// the whole call.
//
// # Targets
//
// A call goes to every member of the group, or to the members named in a
// request header (default "nodes": comma-separated names or repeated
// values). Only names that config lists are accepted; any other name ends
// the call with INVALID_ARGUMENT naming it, so a client can never make the
// proxy dial an address. The header is removed before forwarding.
//
// # Members from a resolver
//
// [New] takes a fixed member list. [NewDynamic] takes a [MemberSource]
// instead, usually [Discovered] over a [discovery.Members] that follows a
// grpc-go resolver target ("dns:///nodes.example.svc:50000" for a
// Kubernetes headless Service, "file:///etc/manifold/nodes" for a watched
// file of name=address lines). Each call acquires the current members once
// and keeps them to its end: members that join serve new calls, and a member
// that leaves keeps serving the calls that have it; its connection closes
// when the last of them ends. Member names come from the resolver (the
// file's names, or the address, "10.0.0.5:50000", for DNS), and are what the
// nodes header selects and the spliced hostname holds. A call that finds no
// member ends with UNAVAILABLE: "fanout GROUP: no members (resolver TARGET:
// LAST ERROR)". Method kinds, unless configured, come from the reflection of
// one current member ([AnyMember]), skipping members that cannot be reached.
//
// Only the resolver removes a member: one that stopped stays in the set, and
// each call it is a target of gets its error item (or, with fail_fast, its
// error), until the resolver no longer returns it. A member's connection
// failing makes [discovery.Members] ask the resolver again at once, but
// grpc-go's DNS resolver answers at most every 30 s, and Kubernetes removes
// a pod from DNS only once its endpoints drop it.
//
// A dynamic group's size is the resolver's current answer, not the client's
// choice: a call that names no targets ends with UNAVAILABLE (worth
// retrying) when the group has fewer members than a quorum policy needs
// ("fanout GROUP: quorum of 3 needs 3 members, the resolver has 2") or more
// than max_targets. The same shortfall caused by the client's nodes header,
// or by a listed group's configuration, is INVALID_ARGUMENT.
//
// # Opening
//
// All upstream streams open at once, each in its own goroutine. Each gets the
// client's deadline minus a reserve (default 10 % of the remaining time, at
// least 20 ms) and an optional per-upstream timeout, so that the answers of
// healthy members reach the client before its deadline even when one member
// hangs.
//
// # Merging
//
// How answers merge depends on the method's kind, which must be known
// (config patterns, a protoset, or upstream reflection; see
// [methodkind]); the proxy never guesses.
//
//   - Unary and client-streaming: one response message whose items field
//     (default 1) holds every target's items in the order the targets were
//     listed, each with a metadata sub-message (default field 1: hostname,
//     error, status) spliced in at the wire level by [metadata]. A target
//     that failed, or misbehaved (no message with OK, or two messages),
//     contributes one error item.
//   - Server-streaming and bidi: messages of all targets are interleaved as
//     they arrive, each target's own order kept, each with its metadata
//     appended as one extra buffer (the payload is not copied). A failing
//     target adds exactly one error message. Request frames are broadcast to
//     every live target through its own bounded queue, shared by reference
//     count, so a slow target delays nobody until its queue is full, and then
//     back-pressure reaches the client.
//
// Response headers are the union of the targets' headers, sent before the
// first message: the proxy waits for every target still opening, but at
// most the header wait (default 200 ms) after a message is ready; headers
// that come later are dropped and counted. Trailers are merged.
//
// # Policies
//
// all (default) waits for every target; first answers with the first
// target that succeeds and cancels the rest (hedging); quorum:N answers once
// N targets succeeded and cancels the rest; fail_fast turns any target's
// error into the call's status.
package fanout
