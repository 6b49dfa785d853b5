package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
	"github.com/manifold-grpc/manifold/transport/rawcodec"
)

// claims is a typed per-call value, as an auth filter would store.
type claims struct {
	Subject string
	Scopes  []string
}

var (
	claimsKey  = pipeline.NewKey[*claims]("claims")
	scratchKey = pipeline.NewKey[string]("scratch")
)

// TestStateAcrossFilters sets typed values in request hooks and reads them
// in other filters' response hooks: an outer filter's end hook, an inner
// filter's header hook; a value deleted on the request side is gone on the
// response side.
func TestStateAcrossFilters(t *testing.T) {
	t.Parallel()
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	type seen struct {
		subject    string
		hasScratch bool
	}
	ends := make(chan seen, 1)
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		pipeline.ResponseEndFunc("access-log", func(_ context.Context, call *pipeline.Call, _ *pipeline.End) {
			c, _ := claimsKey.Get(call)
			_, ok := scratchKey.Get(call)
			var s seen
			if c != nil {
				s.subject = c.Subject
			}
			s.hasScratch = ok
			ends <- s
		}),
		&pipeline.Funcs{
			FilterName: "authn",
			RequestHeaders: func(_ context.Context, call *pipeline.Call) error {
				claimsKey.Set(call, &claims{Subject: call.Inbound.Get("x-user")[0], Scopes: []string{"read"}})
				scratchKey.Set(call, "temporary")
				return nil
			},
		},
		pipeline.RequestHeadersFunc("scrub", func(_ context.Context, call *pipeline.Call) error {
			if v, ok := scratchKey.Get(call); !ok || v != "temporary" {
				return fmt.Errorf("scratch = %q, %v; want temporary", v, ok)
			}
			scratchKey.Delete(call)
			return nil
		}),
		&pipeline.Funcs{
			FilterName: "echo-user",
			ResponseHeaders: func(_ context.Context, call *pipeline.Call, md metadata.MD) error {
				if c, ok := claimsKey.Get(call); ok {
					md.Set("x-subject", c.Subject)
				}
				return nil
			},
		},
	}})
	ctx := metadata.AppendToOutgoingContext(callCtx(t), "x-user", "alice")
	var header metadata.MD
	if err := runUnary(ctx, env.Client, grpc.Header(&header)); err != nil {
		t.Fatal(err)
	}
	if got := header.Get("x-subject"); len(got) != 1 || got[0] != "alice" {
		t.Errorf("x-subject header %q, want [alice]", got)
	}
	if got := <-ends; got != (seen{subject: "alice"}) {
		t.Errorf("end hook saw %+v, want subject alice and no scratch value", got)
	}
}

// TestStateConcurrentSides sets and reads call state from the request and
// response goroutines of bidi calls at the same time; run with -race.
func TestStateConcurrentSides(t *testing.T) {
	t.Parallel()
	reqCount := pipeline.NewKey[int]("requests")
	respCount := pipeline.NewKey[int]("responses")
	var mismatches atomic.Int32
	addr, _ := testbackend.Start(t, &testbackend.Service{})
	env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
		&pipeline.Funcs{
			FilterName: "counter",
			RequestMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
				n, _ := reqCount.Get(call)
				reqCount.Set(call, n+1)
				respCount.Get(call)
				return nil
			},
			ResponseMessage: func(_ context.Context, call *pipeline.Call, _ *rawcodec.Frame) error {
				n, _ := respCount.Get(call)
				respCount.Set(call, n+1)
				if r, _ := reqCount.Get(call); r < n+1 {
					mismatches.Add(1) // an echo cannot come before its request
				}
				return nil
			},
			ResponseEnd: func(_ context.Context, call *pipeline.Call, _ *pipeline.End) {
				r, _ := reqCount.Get(call)
				s, _ := respCount.Get(call)
				if r != 50 || s != 50 {
					mismatches.Add(1)
				}
			},
		},
	}})
	ctx := callCtx(t)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			bidi, err := env.Client.FullDuplexCall(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			done := make(chan error, 1)
			go func() {
				for {
					if _, err := bidi.Recv(); err != nil {
						if err == io.EOF {
							err = nil
						}
						done <- err
						return
					}
				}
			}()
			for range 50 {
				if err := bidi.Send(&testpb.StreamingOutputCallRequest{Payload: &testpb.Payload{Body: []byte("x")}}); err != nil {
					break
				}
			}
			_ = bidi.CloseSend()
			if err := <-done; err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := mismatches.Load(); n != 0 {
		t.Errorf("%d inconsistent state reads", n)
	}
}

// TestKey covers the key API on a bare Call: unset values, replacement,
// deletion, distinct keys with equal names, and concurrent use.
func TestKey(t *testing.T) {
	t.Parallel()
	call := &pipeline.Call{}
	a := pipeline.NewKey[int]("n")
	b := pipeline.NewKey[int]("n")
	if a.String() != "n" {
		t.Errorf("String() = %q, want n", a.String())
	}
	if v, ok := a.Get(call); ok || v != 0 {
		t.Errorf("unset Get = %v, %v; want 0, false", v, ok)
	}
	a.Delete(call) // deleting an unset value is a no-op
	a.Set(call, 1)
	a.Set(call, 2)
	if v, ok := a.Get(call); !ok || v != 2 {
		t.Errorf("Get after two Sets = %v, %v; want 2, true", v, ok)
	}
	if _, ok := b.Get(call); ok {
		t.Error("a key with an equal name shares the value")
	}
	a.Delete(call)
	if _, ok := a.Get(call); ok {
		t.Error("Get after Delete found a value")
	}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			k := pipeline.NewKey[int](fmt.Sprint(i))
			for j := range 200 {
				k.Set(call, j)
				if v, ok := k.Get(call); !ok || v != j {
					t.Errorf("goroutine %d: Get = %v, %v; want %d", i, v, ok, j)
					return
				}
				a.Set(call, j)
				a.Get(call)
				if j%10 == 0 {
					a.Delete(call)
				}
			}
		})
	}
	wg.Wait()
}

// TestStateManyKeys: more keys than a call keeps without allocating, set,
// replaced and deleted in any order, each keep their own value.
func TestStateManyKeys(t *testing.T) {
	c := &pipeline.Call{}
	keys := make([]*pipeline.Key[int], 10)
	for i := range keys {
		keys[i] = pipeline.NewKey[int]("k")
		keys[i].Set(c, i)
	}
	keys[7].Set(c, 70)
	for _, i := range []int{0, 9, 4} {
		keys[i].Delete(c)
	}
	keys[3].Delete(c)
	keys[3].Set(c, 33)
	for i, k := range keys {
		want, wantOK := i, true
		switch i {
		case 0, 9, 4:
			want, wantOK = 0, false
		case 7:
			want = 70
		case 3:
			want = 33
		}
		if got, ok := k.Get(c); got != want || ok != wantOK {
			t.Errorf("key %d = %d, %v; want %d, %v", i, got, ok, want, wantOK)
		}
	}
}
