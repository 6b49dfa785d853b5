// Package concurrency is the "concurrency_limit" filter: at most
// max_concurrent calls in flight through the filter at once.
//
// A call takes a slot when its request headers pass the filter and gives it
// back when the call ends, however it ends: success, an upstream error, the
// client cancelling or its deadline passing, a local reply or a panic in a
// later filter or the terminal. Streams hold their slot for their whole
// life. The slot is given back in the filter's response end hook, which the
// chain runs exactly once for every call whose request headers the filter
// accepted ([pipeline.ResponseEndHook]).
//
// One filter instance has one set of slots: placed on a route, it limits
// that route; placed in the global chain, it limits everything. A config
// reload builds a new instance, which starts empty, while calls of the old
// one finish.
//
// When every slot is taken, a call is refused at once with
// RESOURCE_EXHAUSTED ("concurrency_limit: 100 calls in flight"), before the
// upstream is contacted. With max_pending set, up to max_pending calls
// wait instead, first come first served, each for at most queue_timeout
// (default 1s); a call that times out is refused with RESOURCE_EXHAUSTED,
// one that finds the queue full at once, and one whose client gives up while
// it waits ends with CANCELLED or DEADLINE_EXCEEDED.
//
// The filter only looks at request headers and the end of the call.
package concurrency
