package methodkind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/proto" // registers the "proto" codec used for reflection requests
	"google.golang.org/grpc/metadata"
	rpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Default values of the [ReflectionOption]s.
const (
	DefaultNegativeTTL       = 30 * time.Second
	DefaultReflectionTimeout = 5 * time.Second
)

// The reflection methods asked, in order. v1alpha's messages are the same as
// v1's on the wire, so v1's types serve both.
const (
	reflectionV1      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	reflectionV1Alpha = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

// sweepMin is the number of cached services past which expired negative
// entries are dropped.
const sweepMin = 1024

type reflectionOptions struct {
	negativeTTL time.Duration
	timeout     time.Duration
}

// ReflectionOption configures [NewReflection].
type ReflectionOption func(*reflectionOptions)

// WithNegativeTTL sets how long [Reflection] remembers that it could not
// learn a method's kind (the upstreams do not have the service or the method,
// offer no reflection, or failed) before asking again. The default is
// [DefaultNegativeTTL]. A value ≤ 0 keeps the default.
func WithNegativeTTL(d time.Duration) ReflectionOption {
	return func(o *reflectionOptions) {
		if d > 0 {
			o.negativeTTL = d
		}
	}
}

// WithTimeout bounds one reflection exchange with one upstream. The default
// is [DefaultReflectionTimeout]. A value ≤ 0 keeps the default.
func WithTimeout(d time.Duration) ReflectionOption {
	return func(o *reflectionOptions) {
		if d > 0 {
			o.timeout = d
		}
	}
}

// Reflection is a [Resolver] that asks the upstreams' gRPC server reflection
// service.
//
// For a method "/pkg.Svc/M" it asks for the file containing the symbol
// "pkg.Svc", once per service, and remembers the kind of every method of the
// returned service for as long as the Reflection lives. Each upstream is
// asked in order until one returns the service; on each, reflection v1
// (grpc.reflection.v1.ServerReflection) is tried first and v1alpha only when
// v1 is Unimplemented. Concurrent lookups of one service share one exchange.
//
// When no upstream returns the service, or the service lacks the method, the
// answer is [Unknown] and it is remembered for the negative TTL
// ([WithNegativeTTL]): calls to unknown methods do not each hit reflection.
// Not knowing is not an error: an upstream without a reflection service (v1
// and v1alpha both Unimplemented) or that reports the symbol NotFound gives
// [Unknown] and a nil error. Failures (the upstream unreachable, a timeout, a
// malformed answer) give [Unknown] and an error, also remembered for the
// negative TTL and returned to every caller in that time. Kinds once learnt
// are never forgotten or overwritten by a failure.
//
// Reflection requests use the proto codec whatever the connections' default
// call options say, and carry no outgoing metadata of the caller's context:
// an answer is shared by all callers. A caller whose ctx ends while waiting
// gets [Unknown] and ctx's error; the exchange goes on (bounded by
// [WithTimeout]) for the others.
//
// Reflection is safe for concurrent use. Memory grows with the number of
// distinct services asked about; expired negative entries are dropped once
// there are many.
type Reflection struct {
	conns []grpc.ClientConnInterface
	opts  reflectionOptions

	mu       sync.Mutex
	services map[string]*serviceEntry // by service full name "pkg.Svc"
	sweepAt  int                      // len(services) that triggers a sweep
}

// serviceEntry is what Reflection knows of one service. Guarded by
// Reflection.mu.
type serviceEntry struct {
	methods map[string]Kind // method name → kind, from the last answer; nil before one
	err     error           // of the last lookup
	checked time.Time       // when the last lookup ended; zero before
	flight  chan struct{}   // non-nil while a lookup runs; closed when it ends
}

// NewReflection returns a Reflection over conns, asked in order. The
// connections stay the caller's: Reflection never closes them.
func NewReflection(conns []grpc.ClientConnInterface, opts ...ReflectionOption) *Reflection {
	o := reflectionOptions{negativeTTL: DefaultNegativeTTL, timeout: DefaultReflectionTimeout}
	for _, opt := range opts {
		opt(&o)
	}
	return &Reflection{
		conns:    slices.Clone(conns),
		opts:     o,
		services: make(map[string]*serviceEntry),
		sweepAt:  sweepMin,
	}
}

// Kind returns the kind of fullMethod as the upstreams' reflection tells it.
// A name that is not "/service/method" is [Unknown] without error.
func (r *Reflection) Kind(ctx context.Context, fullMethod string) (Kind, error) {
	svc, method, ok := splitMethod(fullMethod)
	if !ok {
		return Unknown, nil
	}

	r.mu.Lock()
	e := r.services[svc]
	if e == nil {
		r.sweepLocked()
		e = new(serviceEntry)
		r.services[svc] = e
	}
	if k, ok := e.methods[method]; ok {
		r.mu.Unlock()
		return k, nil
	}
	if e.flight == nil {
		if !e.checked.IsZero() && time.Since(e.checked) < r.opts.negativeTTL {
			err := e.err
			r.mu.Unlock()
			return Unknown, err
		}
		e.flight = make(chan struct{})
		go r.lookup(ctx, svc, e)
	}
	flight := e.flight
	r.mu.Unlock()

	select {
	case <-flight:
	case <-ctx.Done():
		return Unknown, fmt.Errorf("methodkind: upstream reflection for %s: %w", svc, context.Cause(ctx))
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if k, ok := e.methods[method]; ok {
		return k, nil
	}
	return Unknown, e.err
}

// sweepLocked drops expired negative entries once the map has grown past
// sweepAt. r.mu must be held.
func (r *Reflection) sweepLocked() {
	if len(r.services) < r.sweepAt {
		return
	}
	for svc, e := range r.services {
		if e.methods == nil && e.flight == nil && time.Since(e.checked) >= r.opts.negativeTTL {
			delete(r.services, svc)
		}
	}
	r.sweepAt = max(2*len(r.services), sweepMin)
}

// lookup asks the upstreams about svc and records the answer in e.
func (r *Reflection) lookup(ctx context.Context, svc string, e *serviceEntry) {
	// The answer is shared: it must not end with the first caller, nor carry
	// that caller's outgoing metadata.
	ctx = metadata.NewOutgoingContext(context.WithoutCancel(ctx), nil)
	methods, err := r.fetch(ctx, svc)

	r.mu.Lock()
	defer r.mu.Unlock()
	if methods != nil {
		e.methods = methods
	}
	e.err = err
	e.checked = time.Now()
	close(e.flight)
	e.flight = nil
}

// fetch asks each connection in order until one returns svc. It returns the
// service's methods, or nil and the joined errors of the connections that
// failed (nil if none failed: nobody has the service).
func (r *Reflection) fetch(ctx context.Context, svc string) (map[string]Kind, error) {
	var errs []error
	for i, cc := range r.conns {
		methods, err := r.ask(ctx, cc, svc)
		if methods != nil {
			return methods, nil
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("methodkind: upstream reflection for %s, conn %d: %w", svc, i, err))
		}
	}
	return nil, errors.Join(errs...)
}

// ask asks one connection, v1 first, then v1alpha if v1 is Unimplemented.
// nil, nil means the upstream does not know svc or has no reflection.
func (r *Reflection) ask(ctx context.Context, cc grpc.ClientConnInterface, svc string) (map[string]Kind, error) {
	methods, err := r.exchange(ctx, cc, reflectionV1, svc)
	if status.Code(err) == codes.Unimplemented {
		methods, err = r.exchange(ctx, cc, reflectionV1Alpha, svc)
		if status.Code(err) == codes.Unimplemented {
			return nil, nil // no reflection service
		}
	}
	return methods, err
}

// streamDesc describes ServerReflectionInfo, the same in v1 and v1alpha.
var streamDesc = grpc.StreamDesc{
	StreamName:    "ServerReflectionInfo",
	ServerStreams: true,
	ClientStreams: true,
}

// exchange sends one file_containing_symbol request on a new reflection
// stream and reads the answer.
func (r *Reflection) exchange(ctx context.Context, cc grpc.ClientConnInterface, method, svc string) (map[string]Kind, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.timeout)
	defer cancel()

	stream, err := cc.NewStream(ctx, &streamDesc, method,
		grpc.ForceCodecV2(encoding.GetCodecV2("proto")),
		grpc.CallContentSubtype("proto"))
	if err != nil {
		return nil, err
	}
	req := &rpb.ServerReflectionRequest{
		MessageRequest: &rpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: svc},
	}
	// io.EOF from SendMsg means the stream ended; RecvMsg tells why.
	if err := stream.SendMsg(req); err != nil && err != io.EOF {
		return nil, err
	}
	if err := stream.CloseSend(); err != nil {
		return nil, err
	}
	resp := new(rpb.ServerReflectionResponse)
	if err := stream.RecvMsg(resp); err != nil {
		if err == io.EOF {
			return nil, errors.New("reflection stream ended without an answer")
		}
		return nil, err
	}
	// Let the server end the stream cleanly; the answer is already in.
	_ = stream.RecvMsg(new(rpb.ServerReflectionResponse))

	switch res := resp.GetMessageResponse().(type) {
	case *rpb.ServerReflectionResponse_FileDescriptorResponse:
		return findService(res.FileDescriptorResponse.GetFileDescriptorProto(), svc)
	case *rpb.ServerReflectionResponse_ErrorResponse:
		code := codes.Code(res.ErrorResponse.GetErrorCode())
		if code == codes.NotFound {
			return nil, nil
		}
		return nil, status.Error(code, res.ErrorResponse.GetErrorMessage())
	default:
		return nil, fmt.Errorf("unexpected reflection answer %T", res)
	}
}

// findService reads the methods of svc from the raw FileDescriptorProtos of
// a reflection answer: the file declaring svc and dependencies. The method
// flags are all a kind needs, so the files are not linked and missing
// dependencies do not matter.
func findService(files [][]byte, svc string) (map[string]Kind, error) {
	for _, raw := range files {
		fp := new(descriptorpb.FileDescriptorProto)
		if err := proto.Unmarshal(raw, fp); err != nil {
			return nil, fmt.Errorf("bad file descriptor in reflection answer: %w", err)
		}
		for _, sp := range fp.GetService() {
			if serviceName(fp.GetPackage(), sp.GetName()) != svc {
				continue
			}
			methods := make(map[string]Kind, len(sp.GetMethod()))
			for _, m := range sp.GetMethod() {
				methods[m.GetName()] = FromDesc(m.GetClientStreaming(), m.GetServerStreaming())
			}
			return methods, nil
		}
	}
	return nil, fmt.Errorf("reflection answer for %s does not declare it", svc)
}

// splitMethod splits "/pkg.Svc/M" into "pkg.Svc" and "M".
func splitMethod(fullMethod string) (svc, method string, ok bool) {
	rest, ok := strings.CutPrefix(fullMethod, "/")
	if !ok {
		return "", "", false
	}
	svc, method, ok = strings.Cut(rest, "/")
	if !ok || svc == "" || method == "" || strings.Contains(method, "/") {
		return "", "", false
	}
	return svc, method, true
}

func (*Reflection) source() string { return "upstream reflection" }

var (
	_ Resolver = (*Reflection)(nil)
	_ sourcer  = (*Reflection)(nil)
)
