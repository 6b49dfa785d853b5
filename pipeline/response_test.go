package pipeline_test

import (
	"context"
	"io"
	"slices"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/internal/proxytest"
	"github.com/manifold-grpc/manifold/internal/testbackend"
	"github.com/manifold-grpc/manifold/pipeline"
)

// TestResponseHeaderHooks checks that headers a response header hook adds
// reach the client with the upstream's own headers, whether the upstream
// answers, fails after sending headers, or fails trailers-only; and that a
// trailers-only failure stays trailers-only when no hook adds anything.
func TestResponseHeaderHooks(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// unary is the backend's UnaryCall.
		unary func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error)
		// add is the header the hook adds, none when empty.
		add        string
		wantCode   codes.Code
		wantHeader metadata.MD
	}{{
		name: "normal call",
		unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := grpc.SetHeader(ctx, metadata.Pairs("x-backend", "b")); err != nil {
				return nil, err
			}
			return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
		},
		add:        "hook",
		wantCode:   codes.OK,
		wantHeader: metadata.Pairs("x-backend", "b", "x-added", "hook"),
	}, {
		name: "headers then failure",
		unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			if err := grpc.SendHeader(ctx, metadata.Pairs("x-backend", "b")); err != nil {
				return nil, err
			}
			return nil, status.Error(codes.Unavailable, "backend: failed after headers")
		},
		add:        "hook",
		wantCode:   codes.Unavailable,
		wantHeader: metadata.Pairs("x-backend", "b", "x-added", "hook"),
	}, {
		name: "trailers-only failure, hook adds a header",
		unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			return nil, status.Error(codes.NotFound, "backend: no such thing")
		},
		add:        "hook",
		wantCode:   codes.NotFound,
		wantHeader: metadata.Pairs("x-added", "hook"),
	}, {
		name: "trailers-only failure, hook adds nothing",
		unary: func(ctx context.Context, _ *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
			return nil, status.Error(codes.NotFound, "backend: no such thing")
		},
		wantCode:   codes.NotFound,
		wantHeader: nil,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr, _ := testbackend.Start(t, &testbackend.Service{Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-backend-trailer", "t"))
				return tt.unary(ctx, req)
			}})
			var runs atomic.Int32
			env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
				&pipeline.Funcs{
					FilterName: "headers",
					ResponseHeaders: func(_ context.Context, _ *pipeline.Call, md metadata.MD) error {
						runs.Add(1)
						if tt.add != "" {
							md.Append("x-added", tt.add)
						}
						return nil
					},
				},
			}})
			for _, via := range []struct {
				name   string
				client testpb.TestServiceClient
				want   metadata.MD
			}{{"proxy", env.Client, tt.wantHeader}, {"direct", env.Direct, without(tt.wantHeader, "x-added")}} {
				var header, trailer metadata.MD
				_, err := via.client.UnaryCall(callCtx(t), &testpb.SimpleRequest{Payload: &testpb.Payload{Body: []byte("x")}},
					grpc.Header(&header), grpc.Trailer(&trailer))
				if status.Code(err) != tt.wantCode {
					t.Errorf("%s: status %v, want %v", via.name, err, tt.wantCode)
				}
				if got := userKeys(header); !mdEqual(got, via.want) {
					t.Errorf("%s: header %v, want %v", via.name, got, via.want)
				}
				if via.want == nil && len(header) != 0 {
					// Not even content-type: no header frame at all.
					t.Errorf("%s: header %v, want none (trailers-only)", via.name, header)
				}
				if got := trailer.Get("x-backend-trailer"); !slices.Equal(got, []string{"t"}) {
					t.Errorf("%s: trailer x-backend-trailer = %q, want [t]", via.name, got)
				}
			}
			if n := runs.Load(); n > 1 {
				t.Errorf("response header hook ran %d times, want at most once", n)
			}
			if n := runs.Load(); n == 0 && tt.add != "" {
				t.Error("response header hook never ran")
			}
		})
	}
}

// userKeys drops the keys grpc-go itself puts in received metadata.
func userKeys(md metadata.MD) metadata.MD {
	out := metadata.MD{}
	for k, v := range md {
		if k == "content-type" || k[0] == ':' {
			continue
		}
		out[k] = v
	}
	return out
}

func without(md metadata.MD, key string) metadata.MD {
	out := md.Copy()
	delete(out, key)
	return out
}

func mdEqual(a, b metadata.MD) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// TestResponseEndHooks rewrites how calls end: status and trailers. The inner
// filter rewrites, an around filter sits in the middle, and the outer filter
// sees the rewritten end; the client gets it.
func TestResponseEndHooks(t *testing.T) {
	t.Parallel()
	t.Run("success to failure", func(t *testing.T) {
		t.Parallel()
		addr, _ := testbackend.Start(t, &testbackend.Service{
			Unary: func(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
				_ = grpc.SetTrailer(ctx, metadata.Pairs("x-drop", "1", "x-keep", "1"))
				return &testpb.SimpleResponse{Payload: req.GetPayload()}, nil
			},
		})
		want := status.New(codes.FailedPrecondition, "rewrite: not today")
		outer := &endRecorder{name: "outer"}
		env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
			outer,
			recordingAround("around", &recorder{}),
			pipeline.ResponseEndFunc("rewrite", func(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
				if end.Status.Code() != codes.OK {
					return
				}
				end.Status = want
				delete(end.Trailer, "x-drop")
				end.Trailer.Set("x-end", "rewritten")
			}),
		}})
		var trailer metadata.MD
		err := runUnary(callCtx(t), env.Client, grpc.Trailer(&trailer))
		requireStatus(t, err, want)
		if got := userKeys(trailer); !mdEqual(got, metadata.Pairs("x-keep", "1", "x-end", "rewritten")) {
			t.Errorf("trailer %v, want x-keep and x-end only", got)
		}
		if got := outer.statuses(); len(got) != 1 || got[0] != want {
			t.Errorf("outer end hook saw %v, want the rewritten status", got)
		}
	})
	t.Run("failure to success", func(t *testing.T) {
		t.Parallel()
		addr, _ := testbackend.Start(t, &testbackend.Service{
			ServerStream: func(_ *testpb.StreamingOutputCallRequest, s testpb.TestService_StreamingOutputCallServer) error {
				if err := s.Send(&testpb.StreamingOutputCallResponse{Payload: &testpb.Payload{Body: []byte("one")}}); err != nil {
					return err
				}
				return status.Error(codes.NotFound, "backend: ran out")
			},
		})
		env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
			pipeline.ResponseEndFunc("forgive", func(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
				if end.Status.Code() == codes.NotFound {
					end.Status = status.New(codes.OK, "")
					// The upstream sent no trailers: End.Trailer may be nil.
					end.Trailer = metadata.Join(end.Trailer, metadata.Pairs("x-forgiven", end.Status.Code().String()))
				}
			}),
		}})
		var trailer metadata.MD
		s, err := env.Client.StreamingOutputCall(callCtx(t), &testpb.StreamingOutputCallRequest{}, grpc.Trailer(&trailer))
		if err != nil {
			t.Fatal(err)
		}
		if m, err := s.Recv(); err != nil || string(m.GetPayload().GetBody()) != "one" {
			t.Fatalf("first message: %v, %v", m, err)
		}
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("end: %v, want EOF", err)
		}
		if got := trailer.Get("x-forgiven"); !slices.Equal(got, []string{"OK"}) {
			t.Errorf("trailer x-forgiven = %q, want [OK]", got)
		}
	})
	t.Run("trailers-only failure", func(t *testing.T) {
		t.Parallel()
		addr, _ := testbackend.Start(t, &testbackend.Service{
			Unary: func(context.Context, *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
				return nil, status.Error(codes.NotFound, "backend: gone")
			},
		})
		env := proxytest.Start(t, addr, proxytest.Config{Filters: []pipeline.Filter{
			pipeline.ResponseEndFunc("annotate", func(_ context.Context, _ *pipeline.Call, end *pipeline.End) {
				end.Trailer = metadata.Join(end.Trailer, metadata.Pairs("x-code", end.Status.Code().String()))
				end.Status = status.New(end.Status.Code(), "annotate: "+end.Status.Message())
			}),
		}})
		var header, trailer metadata.MD
		err := runUnary(callCtx(t), env.Client, grpc.Header(&header), grpc.Trailer(&trailer))
		requireStatus(t, err, status.New(codes.NotFound, "annotate: backend: gone"))
		if got := trailer.Get("x-code"); !slices.Equal(got, []string{"NotFound"}) {
			t.Errorf("trailer x-code = %q, want [NotFound]", got)
		}
		if len(header) != 0 {
			t.Errorf("header %v, want none (trailers-only)", header)
		}
	})
}
