package pipeline

import (
	"context"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// Filter is one step of a chain. It implements one or more of the hook
// interfaces below; the chain calls only the hooks a filter implements.
// Name identifies the filter in logs, spans, metrics and errors.
//
// A Filter is shared by every call that flows through its chain, so its
// hooks must be safe for concurrent use. Per-call data belongs in the
// [Call] (see [Key]), not in the filter.
type Filter interface {
	Name() string
}

// RequestHeadersHook sees the request metadata before the upstream call is
// opened. It may change call.Header (never call.Inbound) and may end the call
// by returning an error.
type RequestHeadersHook interface {
	Filter
	OnRequestHeaders(ctx context.Context, call *Call) error
}

// RequestMessageHook sees each request message in chain order.
//
// ctx ends when the call ends, whichever side ends it: a hook that waits
// (for a rate limiter, say) must give up when ctx is done.
//
// The hook may read f, or replace f.Data with new bytes (freeing the old
// slice, see [rawcodec.Frame.Replace]). It must not keep f or its buffers
// after returning unless it took its own reference ([rawcodec.Frame.Ref]).
// Returning an error ends the call; the chain frees f.
type RequestMessageHook interface {
	Filter
	OnRequestMessage(ctx context.Context, call *Call, f *rawcodec.Frame) error
}

// RequestEndHook learns that the client half-closed: no more request
// messages will come. Returning an error ends the call.
type RequestEndHook interface {
	Filter
	OnRequestEnd(ctx context.Context, call *Call) error
}

// ResponseHeadersHook sees the response headers, in reverse chain order,
// before they are sent to the client, and may change them in place. It runs
// once per call. When the call ends without headers (an upstream that
// answered trailers-only, or a local reply), it runs on an empty header at
// the end of the call; if a hook adds something, the header is sent before
// the trailers, otherwise the answer stays trailers-only. Returning an error
// ends the call.
type ResponseHeadersHook interface {
	Filter
	OnResponseHeaders(ctx context.Context, call *Call, header metadata.MD) error
}

// ResponseMessageHook sees each response message in reverse chain order,
// with the same ownership rules as [RequestMessageHook].
type ResponseMessageHook interface {
	Filter
	OnResponseMessage(ctx context.Context, call *Call, f *rawcodec.Frame) error
}

// ResponseEndHook sees how the call ends: the status and trailers the client
// will get, in reverse chain order. It runs exactly once per call that
// reached the filter, whatever happened, including local replies of later
// filters, upstream failures and panics. It may change end. Once the first
// end hook of a stage runs, no request hook of that stage runs again for the
// call.
type ResponseEndHook interface {
	Filter
	OnResponseEnd(ctx context.Context, call *Call, end *End)
}

// AroundHook wraps the rest of the chain, like a
// [google.golang.org/grpc.StreamServerInterceptor]: it receives the stream
// that the rest of the chain will use and calls next.Serve (or not, to reply
// itself). It may pass next a wrapped stream; the terminal uses that
// stream's Context for the upstream call.
//
// A wrapped stream's SendMsg and RecvMsg must not keep the message (a
// *[rawcodec.Frame]) after they return, as a lazy trace of it would: the
// proxy reuses one frame for every message of a stream.
//
// Around filters force the whole call through grpc-go's message layer, and
// cost a little per call; prefer the header and message hooks.
type AroundHook interface {
	Filter
	Around(call *Call, stream ServerStream, next Handler) error
}

// Funcs is a [Filter] built from optional function fields, one per hook.
// Nil fields are hooks the filter does not have, and cost nothing.
type Funcs struct {
	// FilterName is returned by Name.
	FilterName      string
	RequestHeaders  func(ctx context.Context, call *Call) error
	RequestMessage  func(ctx context.Context, call *Call, f *rawcodec.Frame) error
	RequestEnd      func(ctx context.Context, call *Call) error
	ResponseHeaders func(ctx context.Context, call *Call, header metadata.MD) error
	ResponseMessage func(ctx context.Context, call *Call, f *rawcodec.Frame) error
	ResponseEnd     func(ctx context.Context, call *Call, end *End)
	AroundNext      func(call *Call, stream ServerStream, next Handler) error
}

// Name returns f.FilterName.
func (f *Funcs) Name() string { return f.FilterName }

func (f *Funcs) hooks() hooks {
	return hooks{
		reqHeaders:  f.RequestHeaders,
		reqMessage:  f.RequestMessage,
		reqEnd:      f.RequestEnd,
		respHeaders: f.ResponseHeaders,
		respMessage: f.ResponseMessage,
		respEnd:     f.ResponseEnd,
		around:      f.AroundNext,
	}
}

// RequestHeadersFunc returns a filter named name whose only hook is fn, run
// on the request headers.
func RequestHeadersFunc(name string, fn func(ctx context.Context, call *Call) error) Filter {
	return &Funcs{FilterName: name, RequestHeaders: fn}
}

// ResponseEndFunc returns a filter named name whose only hook is fn, run
// when the call ends.
func ResponseEndFunc(name string, fn func(ctx context.Context, call *Call, end *End)) Filter {
	return &Funcs{FilterName: name, ResponseEnd: fn}
}

// AroundFunc returns a filter named name that wraps the rest of the chain
// with fn.
func AroundFunc(name string, fn func(call *Call, stream ServerStream, next Handler) error) Filter {
	return &Funcs{FilterName: name, AroundNext: fn}
}

// hooks is a filter's compiled form: one func per hook, nil where the filter
// has none.
type hooks struct {
	reqHeaders  func(ctx context.Context, call *Call) error
	reqMessage  func(ctx context.Context, call *Call, f *rawcodec.Frame) error
	reqEnd      func(ctx context.Context, call *Call) error
	respHeaders func(ctx context.Context, call *Call, header metadata.MD) error
	respMessage func(ctx context.Context, call *Call, f *rawcodec.Frame) error
	respEnd     func(ctx context.Context, call *Call, end *End)
	around      func(call *Call, stream ServerStream, next Handler) error
}

// hooksOf compiles f's hooks.
func hooksOf(f Filter) hooks {
	if p, ok := f.(interface{ hooks() hooks }); ok {
		return p.hooks()
	}
	var h hooks
	if x, ok := f.(RequestHeadersHook); ok {
		h.reqHeaders = x.OnRequestHeaders
	}
	if x, ok := f.(RequestMessageHook); ok {
		h.reqMessage = x.OnRequestMessage
	}
	if x, ok := f.(RequestEndHook); ok {
		h.reqEnd = x.OnRequestEnd
	}
	if x, ok := f.(ResponseHeadersHook); ok {
		h.respHeaders = x.OnResponseHeaders
	}
	if x, ok := f.(ResponseMessageHook); ok {
		h.respMessage = x.OnResponseMessage
	}
	if x, ok := f.(ResponseEndHook); ok {
		h.respEnd = x.OnResponseEnd
	}
	if x, ok := f.(AroundHook); ok {
		h.around = x.Around
	}
	return h
}

var _ Filter = (*Funcs)(nil)
