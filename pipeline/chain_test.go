package pipeline_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// fakeStream is a ServerStream without a transport: RecvMsg returns the
// frames of recv, then reports the end of the request; sends are recorded.
type fakeStream struct {
	pipeline.ServerStream // nil: any other method panics
	ctx                   context.Context
	header, trailer       metadata.MD
	sent                  int

	mu   sync.Mutex
	recv [][]byte
}

func newFakeStream(recv ...[]byte) *fakeStream {
	return &fakeStream{ctx: context.Background(), recv: recv}
}

func (s *fakeStream) Context() context.Context { return s.ctx }

func (s *fakeStream) RecvMsg(m any) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.recv) == 0 {
		return io.EOF
	}
	m.(*rawcodec.Frame).Replace(rawcodec.FromBytes(s.recv[0]).Data)
	s.recv = s.recv[1:]
	return nil
}
func (s *fakeStream) SetHeader(md metadata.MD) error {
	s.header = metadata.Join(s.header, md)
	return nil
}
func (s *fakeStream) SendHeader(md metadata.MD) error { return s.SetHeader(md) }
func (s *fakeStream) SetTrailer(md metadata.MD)       { s.trailer = metadata.Join(s.trailer, md) }
func (s *fakeStream) SendMsg(m any) error {
	if f, ok := m.(*rawcodec.Frame); ok {
		f.Free()
	}
	s.sent++
	return nil
}

// typedFilter implements every hook interface with methods.
type typedFilter struct{}

func (typedFilter) Name() string                                           { return "typed" }
func (typedFilter) OnRequestHeaders(context.Context, *pipeline.Call) error { return nil }
func (typedFilter) OnRequestMessage(context.Context, *pipeline.Call, *rawcodec.Frame) error {
	return nil
}
func (typedFilter) OnRequestEnd(context.Context, *pipeline.Call) error                   { return nil }
func (typedFilter) OnResponseHeaders(context.Context, *pipeline.Call, metadata.MD) error { return nil }
func (typedFilter) OnResponseMessage(context.Context, *pipeline.Call, *rawcodec.Frame) error {
	return nil
}
func (typedFilter) OnResponseEnd(context.Context, *pipeline.Call, *pipeline.End) {}
func (typedFilter) Around(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
	return next.Serve(call, s)
}

var (
	_ pipeline.RequestHeadersHook  = typedFilter{}
	_ pipeline.RequestMessageHook  = typedFilter{}
	_ pipeline.RequestEndHook      = typedFilter{}
	_ pipeline.ResponseHeadersHook = typedFilter{}
	_ pipeline.ResponseMessageHook = typedFilter{}
	_ pipeline.ResponseEndHook     = typedFilter{}
	_ pipeline.AroundHook          = typedFilter{}
)

// headerOnly implements only the request header hook with a method.
type headerOnly struct{}

func (headerOnly) Name() string                                           { return "header-only" }
func (headerOnly) OnRequestHeaders(context.Context, *pipeline.Call) error { return nil }

var _ pipeline.RequestHeadersHook = headerOnly{}

// touchingTerminal is a terminal that reports what it touches.
type touchingTerminal struct{ touch pipeline.Touch }

func (touchingTerminal) Serve(*pipeline.Call, pipeline.ServerStream) error { return nil }
func (t touchingTerminal) Touches() pipeline.Touch                         { return t.touch }

var nopTerminal = pipeline.HandlerFunc(func(*pipeline.Call, pipeline.ServerStream) error { return nil })

// TestTouches checks what built chains report: only the hooks their filters
// set (nil Funcs fields count for nothing), and whether messages are needed.
func TestTouches(t *testing.T) {
	t.Parallel()
	nopHeaders := func(context.Context, *pipeline.Call) error { return nil }
	nopMessage := func(context.Context, *pipeline.Call, *rawcodec.Frame) error { return nil }
	nopEnd := func(context.Context, *pipeline.Call, *pipeline.End) {}
	nopAround := func(c *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error { return next.Serve(c, s) }
	all := pipeline.TouchRequestHeaders | pipeline.TouchRequestMessages | pipeline.TouchRequestEnd |
		pipeline.TouchResponseHeaders | pipeline.TouchResponseMessages | pipeline.TouchResponseEnd | pipeline.TouchAround
	tests := []struct {
		name          string
		filters       []pipeline.Filter
		terminal      pipeline.Handler
		want          pipeline.Touch
		needsMessages bool
	}{
		{name: "empty", want: 0},
		{name: "empty funcs", filters: []pipeline.Filter{&pipeline.Funcs{FilterName: "nothing"}}, want: 0},
		{
			name:    "request headers func",
			filters: []pipeline.Filter{pipeline.RequestHeadersFunc("h", nopHeaders)},
			want:    pipeline.TouchRequestHeaders,
		},
		{
			name: "headers and trailers",
			filters: []pipeline.Filter{
				headerOnly{},
				&pipeline.Funcs{FilterName: "resp", ResponseHeaders: func(context.Context, *pipeline.Call, metadata.MD) error { return nil }},
				pipeline.ResponseEndFunc("end", nopEnd),
				&pipeline.Funcs{FilterName: "half-close", RequestEnd: nopHeaders},
			},
			want: pipeline.TouchRequestHeaders | pipeline.TouchResponseHeaders | pipeline.TouchResponseEnd | pipeline.TouchRequestEnd,
		},
		{
			name:          "request messages",
			filters:       []pipeline.Filter{headerOnly{}, &pipeline.Funcs{FilterName: "m", RequestMessage: nopMessage}},
			want:          pipeline.TouchRequestHeaders | pipeline.TouchRequestMessages,
			needsMessages: true,
		},
		{
			name:          "response messages",
			filters:       []pipeline.Filter{&pipeline.Funcs{FilterName: "m", ResponseMessage: nopMessage}},
			want:          pipeline.TouchResponseMessages,
			needsMessages: true,
		},
		{
			name:          "around func",
			filters:       []pipeline.Filter{pipeline.AroundFunc("a", nopAround)},
			want:          pipeline.TouchAround,
			needsMessages: true,
		},
		{
			name:          "stream interceptor",
			filters:       []pipeline.Filter{pipeline.StreamInterceptor("i", nil)},
			want:          pipeline.TouchAround,
			needsMessages: true,
		},
		{
			name:          "typed filter with every hook",
			filters:       []pipeline.Filter{typedFilter{}},
			want:          all,
			needsMessages: true,
		},
		{
			name:          "funcs with every hook",
			filters:       []pipeline.Filter{&pipeline.Funcs{FilterName: "f", RequestHeaders: nopHeaders, RequestMessage: nopMessage, RequestEnd: nopHeaders, ResponseHeaders: func(context.Context, *pipeline.Call, metadata.MD) error { return nil }, ResponseMessage: nopMessage, ResponseEnd: nopEnd, AroundNext: nopAround}},
			want:          all,
			needsMessages: true,
		},
		{
			name:          "terminal that builds messages",
			filters:       []pipeline.Filter{headerOnly{}},
			terminal:      touchingTerminal{pipeline.TouchTerminalMessages},
			want:          pipeline.TouchRequestHeaders | pipeline.TouchTerminalMessages,
			needsMessages: true,
		},
		{
			name:     "nested header-only chain",
			filters:  []pipeline.Filter{pipeline.ResponseEndFunc("log", nopEnd)},
			terminal: mustBuild(t, []pipeline.Filter{headerOnly{}}, nopTerminal),
			want:     pipeline.TouchResponseEnd | pipeline.TouchRequestHeaders,
		},
		{
			name:          "nested chain with messages",
			filters:       []pipeline.Filter{headerOnly{}},
			terminal:      mustBuild(t, []pipeline.Filter{&pipeline.Funcs{FilterName: "m", ResponseMessage: nopMessage}}, nopTerminal),
			want:          pipeline.TouchRequestHeaders | pipeline.TouchResponseMessages,
			needsMessages: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			terminal := tt.terminal
			if terminal == nil {
				terminal = nopTerminal
			}
			c := mustBuild(t, tt.filters, terminal)
			if got := c.Touches(); got != tt.want {
				t.Errorf("Touches() = %b, want %b", got, tt.want)
			}
			if got := c.Touches().NeedsMessages(); got != tt.needsMessages {
				t.Errorf("NeedsMessages() = %v, want %v", got, tt.needsMessages)
			}
		})
	}
}

func mustBuild(t *testing.T, filters []pipeline.Filter, terminal pipeline.Handler) *pipeline.Chain {
	t.Helper()
	c, err := pipeline.Build(filters, terminal)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestBuildErrors rejects chains that cannot run, naming the problem.
func TestBuildErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		filters  []pipeline.Filter
		terminal pipeline.Handler
		want     string
	}{
		{"nil terminal", nil, nil, "nil terminal"},
		{"nil filter", []pipeline.Filter{headerOnly{}, nil}, nopTerminal, "filter 1 is nil"},
		{"typed nil filter", []pipeline.Filter{(*pipeline.Funcs)(nil)}, nopTerminal, "filter 0 is nil"},
		{"empty name", []pipeline.Filter{&pipeline.Funcs{RequestHeaders: func(context.Context, *pipeline.Call) error { return nil }}}, nopTerminal, "filter 0 (*pipeline.Funcs) has an empty name"},
		{"empty name from adapter", []pipeline.Filter{headerOnly{}, pipeline.AroundFunc("", nil)}, nopTerminal, "filter 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := pipeline.Build(tt.filters, tt.terminal)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build() = %v, %v; want an error containing %q", c, err, tt.want)
			}
			if c != nil {
				t.Errorf("Build() returned a chain with the error")
			}
		})
	}
}

// TestHeaderOnlyChainPassesStream checks that hooks a chain lacks cost
// nothing: a chain with only request header hooks hands the terminal the
// server's own stream, unwrapped, while a response hook wraps it.
func TestHeaderOnlyChainPassesStream(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		filters []pipeline.Filter
		wrapped bool
	}{
		{"no filters", nil, false},
		{"request headers only", []pipeline.Filter{headerOnly{}, &pipeline.Funcs{FilterName: "nil fields", RequestHeaders: func(context.Context, *pipeline.Call) error { return nil }}}, false},
		{"response end", []pipeline.Filter{headerOnly{}, pipeline.ResponseEndFunc("end", func(context.Context, *pipeline.Call, *pipeline.End) {})}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream := newFakeStream()
			var got pipeline.ServerStream
			c := mustBuild(t, tt.filters, pipeline.HandlerFunc(func(_ *pipeline.Call, s pipeline.ServerStream) error {
				got = s
				return nil
			}))
			if err := c.Serve(&pipeline.Call{Header: metadata.MD{}}, stream); err != nil {
				t.Fatal(err)
			}
			if wrapped := got != pipeline.ServerStream(stream); wrapped != tt.wrapped {
				t.Errorf("terminal stream wrapped = %v, want %v", wrapped, tt.wrapped)
			}
		})
	}
}

// TestFiltersCopy checks that Filters lists the chain's filters in order
// and that neither the caller's slice nor the result aliases the chain.
func TestFiltersCopy(t *testing.T) {
	t.Parallel()
	a, b := pipeline.RequestHeadersFunc("a", nil), headerOnly{}
	in := []pipeline.Filter{a, b}
	c := mustBuild(t, in, nopTerminal)
	in[0] = b
	got := c.Filters()
	if len(got) != 2 || got[0] != a || got[1] != b {
		t.Fatalf("Filters() = %v, want [a header-only]", got)
	}
	got[0] = nil
	if c.Filters()[0] != a {
		t.Error("Filters() result aliases the chain")
	}
}

// TestWatchesRequestEnd: a call that passes a chain with a request end hook
// or an around filter reports it to the terminal, through nested chains;
// header and message hooks alone do not.
func TestWatchesRequestEnd(t *testing.T) {
	noop := func(context.Context, *pipeline.Call) error { return nil }
	endHook := &pipeline.Funcs{FilterName: "end", RequestEnd: noop}
	around := pipeline.AroundFunc("around", func(call *pipeline.Call, s pipeline.ServerStream, next pipeline.Handler) error {
		return next.Serve(call, s)
	})
	headers := pipeline.RequestHeadersFunc("headers", noop)
	messages := &pipeline.Funcs{FilterName: "messages", RequestMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error { return nil }}
	for _, tc := range []struct {
		name         string
		outer, inner []pipeline.Filter
		want         bool
	}{
		{"empty", nil, nil, false},
		{"header and message hooks", []pipeline.Filter{headers}, []pipeline.Filter{messages}, false},
		{"request end hook", []pipeline.Filter{endHook}, nil, true},
		{"around filter in the inner chain", []pipeline.Filter{headers}, []pipeline.Filter{around}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got bool
			terminal := pipeline.HandlerFunc(func(call *pipeline.Call, _ pipeline.ServerStream) error {
				got = call.WatchesRequestEnd()
				return nil
			})
			inner, err := pipeline.Build(tc.inner, terminal)
			if err != nil {
				t.Fatal(err)
			}
			outer, err := pipeline.Build(tc.outer, inner)
			if err != nil {
				t.Fatal(err)
			}
			if err := outer.Serve(&pipeline.Call{Method: "/a.B/C"}, newBenchStream(1)); err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("WatchesRequestEnd = %v, want %v", got, tc.want)
			}
		})
	}
}
