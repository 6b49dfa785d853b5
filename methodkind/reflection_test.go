package methodkind_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	v1alphagrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/methodkind"
)

const (
	v1Method      = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
	v1alphaMethod = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
)

// reflectionMode is what reflection service an upstream offers.
type reflectionMode int

const (
	reflectBoth        reflectionMode = iota // reflection.Register: v1 and v1alpha
	reflectV1AlphaOnly                       // the legacy service alone
	reflectNone                              // no reflection service
)

// upstream is a grpc server on loopback with the interop TestService that
// counts reflection streams.
type upstream struct {
	conn         *grpc.ClientConn
	v1, v1alpha  atomic.Int32
	delay        time.Duration // before each reflection stream is served
	lastIncoming atomic.Value  // metadata.MD of the last reflection stream
}

type testService struct {
	testgrpc.UnimplementedTestServiceServer
}

func startUpstream(t *testing.T, mode reflectionMode, delay time.Duration, dialOpts ...grpc.DialOption) *upstream {
	t.Helper()
	u := &upstream{delay: delay}
	count := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		switch info.FullMethod {
		case v1Method:
			u.v1.Add(1)
		case v1alphaMethod:
			u.v1alpha.Add(1)
		}
		md, _ := metadata.FromIncomingContext(ss.Context())
		u.lastIncoming.Store(md)
		time.Sleep(u.delay)
		return handler(srv, ss)
	}
	s := grpc.NewServer(grpc.StreamInterceptor(count))
	testgrpc.RegisterTestServiceServer(s, testService{})
	switch mode {
	case reflectBoth:
		reflection.Register(s)
	case reflectV1AlphaOnly:
		v1alphagrpc.RegisterServerReflectionServer(s, reflection.NewServer(reflection.ServerOptions{Services: s}))
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(lis)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	u.conn = dial(t, lis.Addr().String(), dialOpts...)
	return u
}

func dial(t *testing.T, addr string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	opts = append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

func conns(us ...*upstream) []grpc.ClientConnInterface {
	var ccs []grpc.ClientConnInterface
	for _, u := range us {
		ccs = append(ccs, u.conn)
	}
	return ccs
}

func TestReflectionKinds(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, reflectBoth, 0)
	r := methodkind.NewReflection(conns(u))
	checkTestServiceKinds(t, r)
	// TestService in one request; one request for NoSuchService (whose answer
	// is NotFound, remembered).
	if got := u.v1.Load(); got != 2 {
		t.Errorf("v1 reflection streams = %d, want 2", got)
	}
	if got := u.v1alpha.Load(); got != 0 {
		t.Errorf("v1alpha reflection streams = %d, want 0", got)
	}
}

func TestReflectionV1AlphaFallback(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, reflectV1AlphaOnly, 0)
	r := methodkind.NewReflection(conns(u))
	checkTestServiceKinds(t, r)
	if v1, v1alpha := u.v1.Load(), u.v1alpha.Load(); v1 != 0 || v1alpha != 2 {
		// A v1 stream to a server without v1 is refused before any
		// interceptor runs, so it is not counted.
		t.Errorf("reflection streams: v1 %d, v1alpha %d; want 0 and 2", v1, v1alpha)
	}
}

func TestReflectionOneRequestPerService(t *testing.T) {
	t.Parallel()
	// The delay keeps the first exchange in flight while the others arrive.
	u := startUpstream(t, reflectBoth, 100*time.Millisecond)
	r := methodkind.NewReflection(conns(u))

	var methods []string
	for m := range testServiceKinds {
		methods = append(methods, m)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		method := methods[i%len(methods)]
		wg.Go(func() {
			k, err := r.Kind(context.Background(), method)
			if err != nil || k != testServiceKinds[method] {
				errs <- errors.New(method + ": got " + k.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := u.v1.Load(); got != 1 {
		t.Errorf("reflection streams = %d, want 1", got)
	}
}

func TestReflectionNegativeCache(t *testing.T) {
	t.Parallel()
	const ttl = 300 * time.Millisecond
	u := startUpstream(t, reflectBoth, 0)
	r := methodkind.NewReflection(conns(u), methodkind.WithNegativeTTL(ttl))
	ctx := context.Background()

	kind := func(method string, want methodkind.Kind, wantStreams int32) {
		t.Helper()
		k, err := r.Kind(ctx, method)
		if err != nil || k != want {
			t.Errorf("Kind(%s) = %v, %v; want %v", method, k, err, want)
		}
		if got := u.v1.Load(); got != wantStreams {
			t.Errorf("after Kind(%s): %d reflection streams, want %d", method, got, wantStreams)
		}
	}
	start := time.Now()
	// An unknown method of a known service.
	kind("/grpc.testing.TestService/NoSuchCall", methodkind.Unknown, 1)
	kind("/grpc.testing.TestService/NoSuchCall", methodkind.Unknown, 1)
	kind("/grpc.testing.TestService/UnaryCall", methodkind.Unary, 1)
	// An unknown service: reflection says NotFound.
	kind("/no.Such/Call", methodkind.Unknown, 2)
	kind("/no.Such/Other", methodkind.Unknown, 2)
	if time.Since(start) >= ttl {
		t.Skip("too slow to test the negative TTL")
	}

	time.Sleep(ttl + 50*time.Millisecond)
	kind("/grpc.testing.TestService/UnaryCall", methodkind.Unary, 2) // known kinds stay
	kind("/grpc.testing.TestService/NoSuchCall", methodkind.Unknown, 3)
	kind("/grpc.testing.TestService/NoSuchCall", methodkind.Unknown, 3)
	kind("/no.Such/Call", methodkind.Unknown, 4)
}

func TestReflectionWithoutReflectionService(t *testing.T) {
	t.Parallel()
	// Decided: an upstream without reflection simply does not know; that is
	// Unknown and no error, so that Chain and Require report "not in
	// upstream reflection" rather than a failure.
	u := startUpstream(t, reflectNone, 0)
	r := methodkind.NewReflection(conns(u))
	for range 2 {
		k, err := r.Kind(context.Background(), "/grpc.testing.TestService/UnaryCall")
		if err != nil || k != methodkind.Unknown {
			t.Errorf("Kind = %v, %v; want unknown, nil", k, err)
		}
	}
}

func TestReflectionUnreachable(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	r := methodkind.NewReflection([]grpc.ClientConnInterface{dial(t, addr)}, methodkind.WithTimeout(2*time.Second))
	for i := range 2 { // the second answer comes from the negative cache
		k, err := r.Kind(context.Background(), "/grpc.testing.TestService/UnaryCall")
		if k != methodkind.Unknown || status.Code(err) != codes.Unavailable {
			t.Fatalf("try %d: Kind = %v, %v; want unknown and Unavailable", i, k, err)
		}
		if msg := err.Error(); !strings.Contains(msg, "grpc.testing.TestService") || !strings.Contains(msg, "methodkind:") {
			t.Errorf("error %q does not name the service", msg)
		}
	}
}

func TestReflectionConnOrder(t *testing.T) {
	t.Parallel()
	none := startUpstream(t, reflectNone, 0)
	first := startUpstream(t, reflectBoth, 0)
	second := startUpstream(t, reflectBoth, 0)
	r := methodkind.NewReflection(conns(none, first, second))
	checkTestServiceKinds(t, r)
	if a, b := first.v1.Load(), second.v1.Load(); a != 2 || b != 1 {
		// TestService is found on first; NoSuchService is asked everywhere.
		t.Errorf("reflection streams: first %d, second %d; want 2 and 1", a, b)
	}
}

// brokenCodec fails every message, like a proxy's raw codec would for
// reflection messages.
type brokenCodec struct{}

func (brokenCodec) Marshal(any) (mem.BufferSlice, error) { return nil, errors.New("broken codec") }
func (brokenCodec) Unmarshal(mem.BufferSlice, any) error { return errors.New("broken codec") }
func (brokenCodec) Name() string                         { return "broken" }

func TestReflectionIgnoresDefaultCodec(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, reflectBoth, 0,
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(brokenCodec{}), grpc.CallContentSubtype("broken")))
	r := methodkind.NewReflection(conns(u))
	checkTestServiceKinds(t, r)
}

func TestReflectionSharedRequestIgnoresCaller(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, reflectBoth, 300*time.Millisecond)
	r := methodkind.NewReflection(conns(u))

	// The first caller gives up; the exchange goes on for the others and
	// does not carry the caller's outgoing metadata.
	ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer secret")
	ctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	k, err := r.Kind(ctx, "/grpc.testing.TestService/UnaryCall")
	if k != methodkind.Unknown || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Kind with an ended ctx = %v, %v; want unknown, deadline exceeded", k, err)
	}
	k, err = r.Kind(context.Background(), "/grpc.testing.TestService/FullDuplexCall")
	if err != nil || k != methodkind.BidiStreaming {
		t.Errorf("Kind = %v, %v; want bidi_streaming", k, err)
	}
	if got := u.v1.Load(); got != 1 {
		t.Errorf("reflection streams = %d, want 1", got)
	}
	if md, _ := u.lastIncoming.Load().(metadata.MD); len(md.Get("authorization")) != 0 {
		t.Errorf("reflection request carried the caller's authorization: %v", md)
	}
}

func TestReflectionMalformedMethod(t *testing.T) {
	t.Parallel()
	u := startUpstream(t, reflectBoth, 0)
	r := methodkind.NewReflection(conns(u))
	for _, m := range []string{"", "/", "UnaryCall", "grpc.testing.TestService/UnaryCall", "/grpc.testing.TestService/", "/grpc.testing.TestService/a/b"} {
		if k, err := r.Kind(context.Background(), m); k != methodkind.Unknown || err != nil {
			t.Errorf("Kind(%q) = %v, %v; want unknown, nil", m, k, err)
		}
	}
	if got := u.v1.Load(); got != 0 {
		t.Errorf("reflection streams = %d, want 0", got)
	}
}

func TestReflectionNoConns(t *testing.T) {
	t.Parallel()
	r := methodkind.NewReflection(nil)
	if k, err := r.Kind(context.Background(), "/a.B/C"); k != methodkind.Unknown || err != nil {
		t.Errorf("Kind = %v, %v; want unknown, nil", k, err)
	}
}
