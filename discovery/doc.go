// Package discovery keeps a changing set of upstream members, fed by any
// grpc-go resolver: "dns:///nodes.example.svc:50000" (a Kubernetes headless
// Service: every address is a member), a watched file of name=address lines
// ("file:///etc/manifold/nodes"), or any scheme registered with
// [resolver.Register] or passed with [WithResolvers].
//
// [Watch] builds the resolver with a [resolver.ClientConn] of this package:
// the resolver pushes address updates (UpdateState, ReportError) and nothing
// here polls DNS. Each update is diffed by member name and address against
// the current set: a new member gets its own connection from the caller's
// [DialFunc] (one connection per member address, which must not re-resolve:
// see [Passthrough]), a member that left is dropped from the set, and a
// member that stayed keeps its connection.
//
// # Members that stop
//
// Only the resolver removes a member. A member whose process stopped stays
// in the set, and calls to it fail with its connection's error, until the
// resolver no longer returns its address. To shorten that, when a member's
// connection (a [*grpc.ClientConn], or any Conn with GetState and
// WaitForStateChange) enters TRANSIENT_FAILURE, Members asks the resolver to
// resolve again at once ([Members.ResolveNow]), as grpc-go's own balancers
// do. The resolver decides when it actually does: grpc-go's DNS resolver
// waits at least 30 s between resolutions, and a Kubernetes headless
// Service drops a pod only once its endpoints do, so a stopped member can
// stay listed for that long. Besides, the resolver is asked every refresh
// interval ([WithRefresh]).
//
// # Snapshots and reference counts
//
// The current set is an immutable [Snapshot]. [Members.Acquire] hands out
// the current snapshot and a release function; a call uses the members of
// the snapshot it acquired from start to end, whatever changes meanwhile,
// and new calls see the new set. A snapshot is reference counted and holds a
// reference on each of its members' connections, so the connection of a
// member that left is closed when the last call that acquired it releases
// it, and not before.
//
// # Names
//
// A member's name is the [WithName] attribute of its address when the
// resolver set one (the file resolver does: the name= part of each line),
// else the address itself ("10.0.0.5:50000", as DNS gives). Names are
// unique within a set (a later address with a name already taken is
// ignored) and must not contain commas or white space, because clients list
// them in comma-separated headers. Members are ordered by name, so that the
// order is stable whatever order a DNS server returns.
//
// # The file resolver
//
// [FileBuilder] serves the "file" scheme without registering it globally:
// Watch uses it for "file:" targets unless [WithResolvers] overrides it. The
// file holds one "name=host:port" per line; blank lines and "#" comments are
// allowed. It is read when the resolver is built (an unreadable or bad file
// fails [Watch]), then re-read at an interval (default 1s, or
// "?interval=500ms" in the target); a bad rewrite is reported as a resolver
// error and the last good set stays.
package discovery
