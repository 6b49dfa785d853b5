package pipeline_test

import (
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/cluster"
	"github.com/manifold-grpc/manifold/filters/route"
	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// Event phases, one per hook. Request-side events start with "req-",
// response-side ones with "resp-".
const (
	reqHeaders  = "req-headers"
	reqMessage  = "req-message"
	reqEnd      = "req-end"
	respHeaders = "resp-headers"
	respMessage = "resp-message"
	respEnd     = "resp-end"
)

// recordingFilter has every plain hook; each records "<phase> <name>".
func recordingFilter(name string, rec *recorder) *pipeline.Funcs {
	return &pipeline.Funcs{
		FilterName: name,
		RequestHeaders: func(context.Context, *pipeline.Call) error {
			rec.add(reqHeaders + " " + name)
			return nil
		},
		RequestMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error {
			rec.add(reqMessage + " " + name)
			return nil
		},
		RequestEnd: func(context.Context, *pipeline.Call) error {
			rec.add(reqEnd + " " + name)
			return nil
		},
		ResponseHeaders: func(context.Context, *pipeline.Call, metadata.MD) error {
			rec.add(respHeaders + " " + name)
			return nil
		},
		ResponseMessage: func(context.Context, *pipeline.Call, *rawcodec.Frame) error {
			rec.add(respMessage + " " + name)
			return nil
		},
		ResponseEnd: func(context.Context, *pipeline.Call, *pipeline.End) {
			rec.add(respEnd + " " + name)
		},
	}
}

// recordingAround wraps the rest of the chain with a stream that records
// the same phases as recordingFilter, as an around filter sees them.
func recordingAround(name string, rec *recorder) pipeline.Filter {
	return pipeline.AroundFunc(name, func(call *pipeline.Call, stream pipeline.ServerStream, next pipeline.Handler) error {
		rec.add(reqHeaders + " " + name)
		err := next.Serve(call, &recordingStream{ServerStream: stream, name: name, rec: rec})
		rec.add(respEnd + " " + name)
		return err
	})
}

type recordingStream struct {
	pipeline.ServerStream
	name string
	rec  *recorder
}

func (s *recordingStream) RecvMsg(m any) error {
	err := s.ServerStream.RecvMsg(m)
	switch err {
	case nil:
		s.rec.add(reqMessage + " " + s.name)
	case io.EOF:
		s.rec.add(reqEnd + " " + s.name)
	}
	return err
}

func (s *recordingStream) SendHeader(md metadata.MD) error {
	s.rec.add(respHeaders + " " + s.name)
	return s.ServerStream.SendHeader(md)
}

func (s *recordingStream) SendMsg(m any) error {
	s.rec.add(respMessage + " " + s.name)
	return s.ServerStream.SendMsg(m)
}

// phase is one hook phase of a call and how many times it happens.
type phase struct {
	name  string
	times int
}

// expectedEvents lists the events of one side of a call in order: each
// phase as many times as it happens, each time with the filters in order.
func expectedEvents(filters []string, phases ...phase) []string {
	var out []string
	for _, p := range phases {
		for range p.times {
			for _, f := range filters {
				out = append(out, p.name+" "+f)
			}
		}
	}
	return out
}

func side(events []string, prefix string) []string {
	var out []string
	for _, e := range events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}

// TestFilterOrder makes each kind of call through A, B, C (around), D, E and
// requires every request-side hook (headers, each message, half-close) to
// run in chain order and every response-side hook (headers, each message,
// end) in reverse order, with the around filter in its place on both sides.
func TestFilterOrder(t *testing.T) {
	t.Parallel()
	for _, kind := range callKinds {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			rec := &recorder{}
			addr, _ := testbackend.Start(t, &testbackend.Service{})
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
				recordingFilter("A", rec),
				recordingFilter("B", rec),
				recordingAround("C", rec),
				recordingFilter("D", rec),
				recordingFilter("E", rec),
			}})
			if err := kind.run(callCtx(t), env.Client); err != nil {
				t.Fatalf("call: %v", err)
			}
			rec.waitCount(t, reqEnd, 5)

			forward := []string{"A", "B", "C", "D", "E"}
			reverse := slices.Clone(forward)
			slices.Reverse(reverse)
			events := rec.snapshot()
			wantReq := expectedEvents(forward, phase{reqHeaders, 1}, phase{reqMessage, kind.reqs}, phase{reqEnd, 1})
			if got := side(events, "req-"); !slices.Equal(got, wantReq) {
				t.Errorf("request side:\n got %q\nwant %q", got, wantReq)
			}
			wantResp := expectedEvents(reverse, phase{respHeaders, 1}, phase{respMessage, kind.resps}, phase{respEnd, 1})
			if got := side(events, "resp-"); !slices.Equal(got, wantResp) {
				t.Errorf("response side:\n got %q\nwant %q", got, wantResp)
			}
		})
	}
}

// TestNestedChainOrder uses a built chain as the terminal of another chain
// (a route chain behind the global chain): the order holds across both.
func TestNestedChainOrder(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{
		Filters: []pipeline.Filter{recordingFilter("global", rec)},
		Terminal: func(c *cluster.Cluster) pipeline.Handler {
			inner, err := pipeline.Build([]pipeline.Filter{recordingFilter("route", rec)}, route.New(c))
			if err != nil {
				t.Fatal(err)
			}
			return inner
		},
	})
	if err := runBidi(callCtx(t), env.Client); err != nil {
		t.Fatal(err)
	}
	rec.waitCount(t, reqEnd, 2)
	events := rec.snapshot()
	wantReq := expectedEvents([]string{"global", "route"}, phase{reqHeaders, 1}, phase{reqMessage, 3}, phase{reqEnd, 1})
	if got := side(events, "req-"); !slices.Equal(got, wantReq) {
		t.Errorf("request side:\n got %q\nwant %q", got, wantReq)
	}
	wantResp := expectedEvents([]string{"route", "global"}, phase{respHeaders, 1}, phase{respMessage, 3}, phase{respEnd, 1})
	if got := side(events, "resp-"); !slices.Equal(got, wantResp) {
		t.Errorf("response side:\n got %q\nwant %q", got, wantResp)
	}
}
