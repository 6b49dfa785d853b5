// Package pipeline is Manifold's filter chain: the ordered list of filters
// that every proxied call flows through, and the terminal that ends it.
//
// A chain is built once with [Build] and serves any number of concurrent
// calls. The first filter is the outermost: the request side runs in chain
// order, the response side in reverse order, like Envoy's decoder and encoder
// filters.
//
//	client ─► A ─► B ─► C ─► terminal ─► upstream
//	client ◄─ A ◄─ B ◄─ C ◄─ terminal ◄─ upstream
//
// # Filters
//
// A [Filter] has a name and implements any of the hook interfaces:
//
//   - [RequestHeadersHook]: the request metadata, once, before anything else.
//   - [RequestMessageHook]: each request message, as a raw [rawcodec.Frame].
//   - [RequestEndHook]: the client half-closed its side.
//   - [ResponseHeadersHook]: the response headers, once.
//   - [ResponseMessageHook]: each response message.
//   - [ResponseEndHook]: the final status and trailers, once, always.
//   - [AroundHook]: wraps the rest of the chain, like a
//     [google.golang.org/grpc.StreamServerInterceptor]; the filter decides
//     whether and how to call next.
//
// Hooks that a filter does not implement cost nothing: the chain is compiled
// into per-hook lists at build time. [Chain.Touches] reports what a chain
// needs, so that a data path can skip message handling for chains that only
// look at headers and trailers.
//
// [Funcs] and the func adapters ([RequestHeadersFunc], [ResponseEndFunc],
// [AroundFunc]) write small filters without declaring a type.
//
// # Ending a call early
//
// Any hook may end the call by returning an error, normally a gRPC status
// ([google.golang.org/grpc/status.Error]); other errors become
// [google.golang.org/grpc/codes.Unknown]. This is a local reply: the filters
// after the one that failed and the upstream never see the call (or see it
// cancelled, if it had started), and the filters before it see the status in
// their response hooks. A panic in a hook becomes
// [google.golang.org/grpc/codes.Internal] for that call only; it is logged
// with its stack and the chain keeps serving other calls.
//
// # Concurrency
//
// For one call, request-side hooks run on one goroutine and response-side
// hooks on another, so a request message hook may run at the same time as a
// response hook of the same call (bidirectional streams do this all the time).
// Hooks of one side never run concurrently with each other. A filter that
// shares data between its two sides must synchronize it; per-call values in
// [Call] state ([Key]) are already safe for concurrent use. Different calls
// run concurrently: filters must be safe for concurrent use.
package pipeline
