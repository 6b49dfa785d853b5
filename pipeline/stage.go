package pipeline

import (
	"context"
	"io"
	"log/slog"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// hookStage runs a run of consecutive hook filters. Each hook list holds
// only the filters that have that hook: request lists in chain order,
// response lists in reverse order. pos is the filter's index in the stage,
// used to run only the response hooks of filters before the one that
// replied locally.
type hookStage struct {
	next Handler
	log  *slog.Logger

	reqHeaders  []hook[func(context.Context, *Call) error]
	reqMessage  []hook[func(context.Context, *Call, *rawcodec.Frame) error]
	reqEnd      []hook[func(context.Context, *Call) error]
	respHeaders []hook[func(context.Context, *Call, metadata.MD) error]
	respMessage []hook[func(context.Context, *Call, *rawcodec.Frame) error]
	respEnd     []hook[func(context.Context, *Call, *End)]

	// wrap is true when the stage must see the stream: any hook other than
	// request headers.
	wrap bool
}

// allFilters is a position limit past every filter of a stage.
const allFilters = int(^uint(0) >> 1)

type hook[F any] struct {
	pos  int
	name string
	fn   F
}

func newHookStage(filters []Filter, hs []hooks, next Handler, log *slog.Logger) *hookStage {
	s := &hookStage{next: next, log: log}
	for i, h := range hs {
		name := filters[i].Name()
		if h.reqHeaders != nil {
			s.reqHeaders = append(s.reqHeaders, hook[func(context.Context, *Call) error]{i, name, h.reqHeaders})
		}
		if h.reqMessage != nil {
			s.reqMessage = append(s.reqMessage, hook[func(context.Context, *Call, *rawcodec.Frame) error]{i, name, h.reqMessage})
		}
		if h.reqEnd != nil {
			s.reqEnd = append(s.reqEnd, hook[func(context.Context, *Call) error]{i, name, h.reqEnd})
		}
	}
	for i := len(hs) - 1; i >= 0; i-- {
		h, name := hs[i], filters[i].Name()
		if h.respHeaders != nil {
			s.respHeaders = append(s.respHeaders, hook[func(context.Context, *Call, metadata.MD) error]{i, name, h.respHeaders})
		}
		if h.respMessage != nil {
			s.respMessage = append(s.respMessage, hook[func(context.Context, *Call, *rawcodec.Frame) error]{i, name, h.respMessage})
		}
		if h.respEnd != nil {
			s.respEnd = append(s.respEnd, hook[func(context.Context, *Call, *End)]{i, name, h.respEnd})
		}
	}
	s.wrap = len(s.reqMessage)+len(s.reqEnd)+len(s.respHeaders)+len(s.respMessage)+len(s.respEnd) > 0
	return s
}

func (s *hookStage) Serve(call *Call, stream ServerStream) error {
	ctx := stream.Context()
	for _, h := range s.reqHeaders {
		if err := s.runReqHeaders(h, ctx, call); err != nil {
			// Local reply: only the filters before h see it.
			return s.finish(ctx, call, stream, nil, err, h.pos)
		}
	}
	if !s.wrap {
		return s.next.Serve(call, stream)
	}
	w := &stageStream{ServerStream: stream, stage: s, call: call, ctx: ctx}
	if len(s.reqMessage)+len(s.reqEnd) > 0 {
		// Only request hooks use reqCtx. A stage of header and end hooks
		// (an access log, tracing) skips it: a cancellable context costs
		// an allocation and a registration with the parent per call.
		w.reqCtx, w.reqCancel = context.WithCancel(ctx)
		defer w.reqCancel()
	}
	err := s.serveNext(ctx, call, stream, w)
	return s.finish(ctx, call, stream, w, err, allFilters)
}

// serveNext runs the rest of the chain. If it panics (the terminal, say),
// the stage's response hooks still see the call end, as Internal, before the
// panic goes on to whoever recovers it: an around filter such as a recovery
// interceptor, or the server.
func (s *hookStage) serveNext(ctx context.Context, call *Call, stream ServerStream, w *stageStream) error {
	defer func() {
		if r := recover(); r != nil {
			_ = s.finish(ctx, call, stream, w, status.Error(codes.Internal, "pipeline: panic in the rest of the chain"), allFilters)
			panic(r)
		}
	}()
	return s.next.Serve(call, w)
}

// finish runs the response header hooks if headers were set but never sent,
// then the response end hooks of the filters before position limit, and
// hands the final trailers and status to the stream below.
func (s *hookStage) finish(ctx context.Context, call *Call, stream ServerStream, w *stageStream, err error, limit int) error {
	if w != nil {
		if w.reqCancel != nil {
			w.reqCancel()
		}
		w.reqMu.Lock()
		w.ended = true
		w.reqMu.Unlock()
		if herr := w.flushHeader(); herr != nil && err == nil {
			err = herr
		}
	} else if len(s.respHeaders) > 0 {
		// A local reply from a request header hook: the response has no
		// headers, but filters before it may still add some.
		md := metadata.MD{}
		if herr := s.runRespHeaders(ctx, call, md, limit); herr != nil && err == nil {
			err = herr
		}
		if len(md) > 0 {
			_ = stream.SetHeader(md)
		}
	}
	if len(s.respEnd) == 0 {
		return err
	}
	end := &End{Status: statusOf(err)}
	if w != nil {
		end.Trailer = w.trailer
	}
	if end.Trailer == nil {
		end.Trailer = metadata.MD{}
	}
	// A local reply's own trailers: from here on the end hooks own them,
	// and the plain status returned below no longer carries them.
	for k, v := range ReplyTrailer(err) {
		end.Trailer[k] = append(end.Trailer[k], v...)
	}
	for _, h := range s.respEnd {
		if h.pos >= limit {
			continue
		}
		s.runRespEnd(h, ctx, call, end)
	}
	if len(end.Trailer) > 0 {
		stream.SetTrailer(end.Trailer)
	}
	return end.Status.Err() // never nil: statusOf, and runRespEnd restores it
}

func (s *hookStage) runReqHeaders(h hook[func(context.Context, *Call) error], ctx context.Context, call *Call) (err error) {
	defer recoverFilter(&err, h.name, "OnRequestHeaders", s.log)
	return h.fn(ctx, call)
}

func (s *hookStage) runReqEnd(h hook[func(context.Context, *Call) error], ctx context.Context, call *Call) (err error) {
	defer recoverFilter(&err, h.name, "OnRequestEnd", s.log)
	return h.fn(ctx, call)
}

func (s *hookStage) runMessage(h hook[func(context.Context, *Call, *rawcodec.Frame) error], hookName string, ctx context.Context, call *Call, f *rawcodec.Frame) (err error) {
	defer recoverFilter(&err, h.name, hookName, s.log)
	return h.fn(ctx, call, f)
}

func (s *hookStage) runRespHeaders(ctx context.Context, call *Call, md metadata.MD, limit int) error {
	for _, h := range s.respHeaders {
		if h.pos >= limit {
			continue
		}
		if err := s.runRespHeader(h, ctx, call, md); err != nil {
			return err
		}
	}
	return nil
}

func (s *hookStage) runRespHeader(h hook[func(context.Context, *Call, metadata.MD) error], ctx context.Context, call *Call, md metadata.MD) (err error) {
	defer recoverFilter(&err, h.name, "OnResponseHeaders", s.log)
	return h.fn(ctx, call, md)
}

func (s *hookStage) runRespEnd(h hook[func(context.Context, *Call, *End)], ctx context.Context, call *Call, end *End) {
	var err error
	func() {
		defer recoverFilter(&err, h.name, "OnResponseEnd", s.log)
		h.fn(ctx, call, end)
	}()
	if err != nil {
		end.Status = statusOf(err)
	}
	if end.Status == nil {
		end.Status = okStatus
	}
}

// stageStream is the stream the rest of the chain sees below a hook stage.
// It runs the stage's message, half-close and header hooks as frames pass,
// and holds trailers back for the response end hooks.
//
// RecvMsg runs on the request goroutine; SendMsg, SetHeader, SendHeader and
// SetTrailer on the response goroutine; they share no fields except through
// mu.
type stageStream struct {
	ServerStream
	stage *hookStage
	call  *Call
	ctx   context.Context

	// Request side. reqMu keeps request hooks from running once the call
	// has ended: RecvMsg holds it for reading while hooks run, finish takes
	// it to set ended. The terminal's request goroutine may outlive the
	// call (grpc-go only unblocks its RecvMsg when the stream closes).
	// Request hooks get reqCtx (nil in a stage without them), which finish
	// cancels before it takes the lock, so that a hook waiting on its
	// context cannot hold up the end of the call.
	reqCtx    context.Context
	reqCancel context.CancelFunc
	reqMu     sync.RWMutex
	ended     bool
	reqEnded  bool

	// Response side.
	mu         sync.Mutex
	header     metadata.MD // set with SetHeader, not yet sent
	headerSent bool
	trailer    metadata.MD
}

func (w *stageStream) RecvMsg(m any) error {
	err := w.ServerStream.RecvMsg(m)
	s := w.stage
	if len(s.reqMessage) == 0 && len(s.reqEnd) == 0 {
		return err
	}
	if err == nil || err == io.EOF {
		w.reqMu.RLock()
		defer w.reqMu.RUnlock()
		if w.ended {
			if err == nil {
				freeFrame(m)
			}
			return errCallEnded
		}
	}
	if err == io.EOF {
		if !w.reqEnded {
			w.reqEnded = true
			for _, h := range s.reqEnd {
				if herr := s.runReqEnd(h, w.reqCtx, w.call); herr != nil {
					return herr
				}
			}
		}
		return err
	}
	if err != nil || len(s.reqMessage) == 0 {
		return err
	}
	f, ok := m.(*rawcodec.Frame)
	if !ok {
		return nil
	}
	for _, h := range s.reqMessage {
		if herr := s.runMessage(h, "OnRequestMessage", w.reqCtx, w.call, f); herr != nil {
			f.Free()
			return asStatusErr(herr)
		}
	}
	return nil
}

func (w *stageStream) SetHeader(md metadata.MD) error {
	if len(w.stage.respHeaders) == 0 {
		return w.ServerStream.SetHeader(md)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.headerSent {
		return w.ServerStream.SetHeader(md) // grpc-go reports the misuse
	}
	w.header = metadata.Join(w.header, md)
	return nil
}

func (w *stageStream) SendHeader(md metadata.MD) error {
	if len(w.stage.respHeaders) == 0 {
		return w.ServerStream.SendHeader(md)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.headerSent {
		return w.ServerStream.SendHeader(md)
	}
	return w.sendHeaderLocked(metadata.Join(w.header, md))
}

// sendHeaderLocked runs the response header hooks and sends the result.
func (w *stageStream) sendHeaderLocked(md metadata.MD) error {
	w.headerSent = true
	w.header = nil
	if md == nil {
		md = metadata.MD{}
	}
	if err := w.stage.runRespHeaders(w.ctx, w.call, md, allFilters); err != nil {
		return asStatusErr(err)
	}
	return w.ServerStream.SendHeader(md)
}

// flushHeader runs the header hooks when the call ends without having sent
// headers. A non-empty result is set so that grpc-go sends it before the
// trailers; an empty one keeps the response trailers-only.
func (w *stageStream) flushHeader() error {
	if len(w.stage.respHeaders) == 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.headerSent {
		return nil
	}
	w.headerSent = true
	md := w.header
	if md == nil {
		md = metadata.MD{}
	}
	w.header = nil
	if err := w.stage.runRespHeaders(w.ctx, w.call, md, allFilters); err != nil {
		return asStatusErr(err)
	}
	if len(md) > 0 {
		return w.ServerStream.SetHeader(md)
	}
	return nil
}

func (w *stageStream) SendMsg(m any) error {
	s := w.stage
	if len(s.respHeaders) > 0 {
		w.mu.Lock()
		if !w.headerSent {
			if err := w.sendHeaderLocked(w.header); err != nil {
				w.mu.Unlock()
				freeFrame(m)
				return err
			}
		}
		w.mu.Unlock()
	}
	if len(s.respMessage) > 0 {
		if f, ok := m.(*rawcodec.Frame); ok {
			for _, h := range s.respMessage {
				if err := s.runMessage(h, "OnResponseMessage", w.ctx, w.call, f); err != nil {
					f.Free()
					return asStatusErr(err)
				}
			}
		}
	}
	return w.ServerStream.SendMsg(m)
}

func (w *stageStream) SetTrailer(md metadata.MD) {
	if len(w.stage.respEnd) == 0 {
		w.ServerStream.SetTrailer(md)
		return
	}
	w.mu.Lock()
	w.trailer = metadata.Join(w.trailer, md)
	w.mu.Unlock()
}

// errCallEnded is what a request read returns once the call has ended.
var errCallEnded = status.Error(codes.Canceled, "pipeline: the call has ended")

func freeFrame(m any) {
	if f, ok := m.(*rawcodec.Frame); ok {
		f.Free()
	}
}

// asStatusErr makes sure a hook's error carries a gRPC status, so that the
// terminal passes it on as the call's status.
func asStatusErr(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	return statusOf(err).Err()
}
