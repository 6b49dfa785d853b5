package route

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/methodkind"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// DefaultDeadlineReserve is how much earlier than the client's deadline the
// upstream's deadline falls, at most: each hop measures the timeout it
// receives from the moment it arrives, so without a reserve the upstream
// would give up after the client, and its status could not reach the
// client. The reserve is also capped at 5 % of the remaining time, so that
// short deadlines stay usable.
const DefaultDeadlineReserve = 10 * time.Millisecond

// Terminal forwards calls one-to-one to a cluster. It is safe for concurrent
// use.
type Terminal struct {
	cluster string
	conn    grpc.ClientConnInterface
	reserve time.Duration
	kinds   methodkind.Resolver // nil: every call takes the general path
}

// Option configures a [Terminal].
type Option func(*Terminal)

// WithDeadlineReserve sets the upper bound of the deadline reserve (see
// [DefaultDeadlineReserve]); 0 passes the client's deadline unchanged.
func WithDeadlineReserve(d time.Duration) Option {
	return func(t *Terminal) { t.reserve = d }
}

// WithKinds tells the terminal the kinds of methods. A call to a method r
// knows sends one request (unary or server-streaming) is forwarded on the
// handler's goroutine alone: it reads the request, sends it, half-closes
// and relays the answer, where other calls need a second goroutine to move
// requests while answers flow. That saves a goroutine per call: about 1 %
// of the CPU of a small unary call in the load benchmark
// (docs/performance.md). Methods r does not know, and streaming-request
// ones, take the general path.
//
// r must be right: a client-streaming method said to be unary would lose
// every request message after the first, as a grpc-go unary handler
// would ignore them.
func WithKinds(r methodkind.Resolver) Option {
	return func(t *Terminal) { t.kinds = r }
}

// New returns a terminal that forwards to c.
func New(c *cluster.Cluster, opts ...Option) *Terminal {
	return NewConn(c.Name(), c.Conn(), opts...)
}

// NewConn returns a terminal that forwards to any grpc client connection;
// name identifies it in errors and logs.
func NewConn(name string, conn grpc.ClientConnInterface, opts ...Option) *Terminal {
	t := &Terminal{cluster: name, conn: conn, reserve: DefaultDeadlineReserve}
	for _, o := range opts {
		o(t)
	}
	return t
}

// Cluster returns the name of the cluster the terminal forwards to.
func (t *Terminal) Cluster() string { return t.cluster }

// BidiDesc describes every proxied call to grpc-go: a transparent proxy
// forwards all four call kinds as bidirectional streams of raw frames.
var BidiDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

var (
	forceRawCodec = grpc.ForceCodecV2(rawcodec.Codec{})
	rawCodecOnly  = []grpc.CallOption{forceRawCodec}
)

// CallOptions are the options of an upstream call that forwards call
// unchanged: the raw codec, and the client's content-subtype and compressor.
// The slice may be shared between calls: callers must not modify it.
func CallOptions(call *pipeline.Call) []grpc.CallOption {
	if call.ContentSubtype == "" && call.Compressor == "" {
		return rawCodecOnly // the common case, without allocating
	}
	opts := make([]grpc.CallOption, 1, 3)
	opts[0] = forceRawCodec
	if call.ContentSubtype != "" {
		opts = append(opts, grpc.CallContentSubtype(call.ContentSubtype))
	}
	if call.Compressor != "" {
		opts = append(opts, grpc.UseCompressor(call.Compressor))
	}
	return opts
}

// Serve forwards one call. It returns the upstream's status, or the error
// that ended the call first (a filter's local reply, the client going away).
func (t *Terminal) Serve(call *pipeline.Call, down pipeline.ServerStream) error {
	ctx, cancel := t.upstreamContext(down.Context())
	defer cancel()
	ctx = metadata.NewOutgoingContext(ctx, call.Header)
	ctx = pipeline.ContextWithUpstream(ctx, pipeline.Upstream{Cluster: t.cluster})

	start := time.Now()
	up, err := t.conn.NewStream(ctx, BidiDesc, call.Method, CallOptions(call)...)
	if err != nil {
		t.record(call, start, err)
		return err
	}

	p := &pump{cancel: cancel}
	if t.singleRequest(ctx, call) {
		err = p.request(down, up)
	} else {
		go p.requests(down, up)
	}
	if err == nil {
		err = p.responses(down, up)
	}
	t.record(call, start, err)
	return err
}

// singleRequest reports whether call's client sends one request message,
// as far as the terminal's kinds know, and no filter waits for its
// half-close, which the single-request path does not read.
func (t *Terminal) singleRequest(ctx context.Context, call *pipeline.Call) bool {
	if t.kinds == nil || call.WatchesRequestEnd() {
		return false
	}
	k, _ := t.kinds.Kind(ctx, call.Method)
	return k == methodkind.Unary || k == methodkind.ServerStreaming
}

// record notes the upstream call's outcome in the call's state, for access
// logs and metrics.
func (t *Terminal) record(call *pipeline.Call, start time.Time, err error) {
	pipeline.RecordUpstream(call, pipeline.UpstreamResult{
		Upstream: pipeline.Upstream{Cluster: t.cluster},
		Code:     status.Code(err),
		Duration: time.Since(start),
	})
}

// upstreamContext derives the upstream call's context: cancelled with the
// client's, with a deadline a little before the client's.
func (t *Terminal) upstreamContext(parent context.Context) (context.Context, context.CancelFunc) {
	d, ok := parent.Deadline()
	if !ok || t.reserve <= 0 {
		return context.WithCancel(parent)
	}
	reserve := min(t.reserve, time.Until(d)/20)
	if reserve <= 0 {
		return context.WithCancel(parent)
	}
	return context.WithDeadline(parent, d.Add(-reserve))
}

// pump moves one call's frames. requests runs on its own goroutine,
// responses on the handler's.
type pump struct {
	cancel context.CancelFunc

	mu     sync.Mutex
	reqErr error // why the request side stopped the call, if it did
}

// requests copies client frames upstream until the client half-closes, then
// half-closes upstream. If the client side fails (the client went away, or a
// filter's request hook ended the call), it records why and cancels the
// upstream stream, which ends responses.
func (p *pump) requests(down pipeline.ServerStream, up grpc.ClientStream) {
	// A panic here (in a stream wrapper an around filter put in) would
	// otherwise take down the process: the server recovers only its own
	// goroutine. It ends this call with INTERNAL instead.
	defer func() {
		if r := recover(); r != nil {
			p.fail(status.Errorf(codes.Internal, "manifold: panic while reading the request: %v", r))
		}
	}()
	f := new(rawcodec.Frame)
	for {
		err := down.RecvMsg(f)
		if err == io.EOF {
			_ = up.CloseSend()
			return
		}
		if err != nil {
			p.fail(err)
			return
		}
		err = up.SendMsg(f)
		f.Free() // no-op unless grpc-go refused the frame before taking it
		if err != nil {
			// io.EOF: the upstream ended the stream; its status reaches
			// the client through responses. Stop reading the client.
			return
		}
	}
}

// request forwards the one request of a unary or server-streaming call on
// the handler's goroutine and half-closes upstream. A client that
// half-closes without a request is forwarded as it is: the upstream judges
// it. An error means the client side ended the call (the client went away,
// or a filter's request hook replied); the upstream is cancelled.
func (p *pump) request(down pipeline.ServerStream, up grpc.ClientStream) error {
	f := new(rawcodec.Frame)
	switch err := down.RecvMsg(f); {
	case err == io.EOF:
	case err != nil:
		p.cancel()
		return err
	default:
		// An error here (the upstream already ended the stream) comes
		// back with the upstream's status from responses.
		_ = up.SendMsg(f)
		f.Free() // no-op unless grpc-go refused the frame before taking it
	}
	_ = up.CloseSend()
	return nil
}

// responses relays the upstream's headers, frames, trailers and status.
func (p *pump) responses(down pipeline.ServerStream, up grpc.ClientStream) error {
	// Header blocks until the upstream sends headers or ends the stream.
	// nil means a trailers-only answer: send no headers, so the client also
	// gets a trailers-only answer.
	if md, _ := up.Header(); md != nil {
		if err := down.SendHeader(pipeline.ResponseHeader(md)); err != nil {
			return p.abort(err)
		}
	}
	f := new(rawcodec.Frame)
	for {
		err := up.RecvMsg(f)
		if err != nil {
			if tr := pipeline.ResponseHeader(up.Trailer()); len(tr) > 0 {
				down.SetTrailer(tr)
			}
			if reqErr := p.requestError(); reqErr != nil {
				return reqErr
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := down.SendMsg(f); err != nil {
			f.Free()
			return p.abort(err)
		}
	}
}

// abort ends the call after the client side failed on the response path:
// it cancels the upstream and returns the error that ended the call.
func (p *pump) abort(err error) error {
	p.cancel()
	if reqErr := p.requestError(); reqErr != nil {
		return reqErr
	}
	return err
}

// fail records why the request side ended the call and cancels the
// upstream, which ends responses.
func (p *pump) fail(err error) {
	p.mu.Lock()
	if p.reqErr == nil {
		p.reqErr = err
	}
	p.mu.Unlock()
	p.cancel()
}

func (p *pump) requestError() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.reqErr
}

var _ pipeline.Handler = (*Terminal)(nil)
