package methodkind_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/methodkind"
)

// recorder returns a resolver that appends name to *calls and answers k, err.
func recorder(calls *[]string, name string, k methodkind.Kind, err error) methodkind.Resolver {
	return methodkind.ResolverFunc(func(context.Context, string) (methodkind.Kind, error) {
		*calls = append(*calls, name)
		return k, err
	})
}

func TestChain(t *testing.T) {
	t.Parallel()
	errA := errors.New("a failed")
	errC := errors.New("c failed")
	tests := []struct {
		name      string
		resolvers func(calls *[]string) []methodkind.Resolver
		want      methodkind.Kind
		wantCalls []string
		wantErrs  []error
	}{
		{
			name: "first known wins",
			resolvers: func(c *[]string) []methodkind.Resolver {
				return []methodkind.Resolver{
					recorder(c, "a", methodkind.Unknown, nil),
					recorder(c, "b", methodkind.ServerStreaming, nil),
					recorder(c, "c", methodkind.Unary, nil),
				}
			},
			want:      methodkind.ServerStreaming,
			wantCalls: []string{"a", "b"},
		},
		{
			name: "earlier errors dropped when someone knows",
			resolvers: func(c *[]string) []methodkind.Resolver {
				return []methodkind.Resolver{
					recorder(c, "a", methodkind.Unknown, errA),
					recorder(c, "b", methodkind.BidiStreaming, nil),
				}
			},
			want:      methodkind.BidiStreaming,
			wantCalls: []string{"a", "b"},
		},
		{
			name: "nobody knows: errors joined",
			resolvers: func(c *[]string) []methodkind.Resolver {
				return []methodkind.Resolver{
					recorder(c, "a", methodkind.Unknown, errA),
					recorder(c, "b", methodkind.Unknown, nil),
					recorder(c, "c", methodkind.Unknown, errC),
				}
			},
			want:      methodkind.Unknown,
			wantCalls: []string{"a", "b", "c"},
			wantErrs:  []error{errA, errC},
		},
		{
			name: "nil resolvers skipped",
			resolvers: func(c *[]string) []methodkind.Resolver {
				return []methodkind.Resolver{nil, recorder(c, "a", methodkind.Unary, nil), nil}
			},
			want:      methodkind.Unary,
			wantCalls: []string{"a"},
		},
		{
			name:      "empty",
			resolvers: func(*[]string) []methodkind.Resolver { return nil },
			want:      methodkind.Unknown,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls []string
			k, err := methodkind.Chain(tt.resolvers(&calls)...).Kind(context.Background(), "/a.B/C")
			if k != tt.want {
				t.Errorf("kind %v, want %v", k, tt.want)
			}
			if !slices.Equal(calls, tt.wantCalls) {
				t.Errorf("asked %q, want %q", calls, tt.wantCalls)
			}
			if (err != nil) != (len(tt.wantErrs) > 0) {
				t.Errorf("error %v, want %v", err, tt.wantErrs)
			}
			for _, want := range tt.wantErrs {
				if !errors.Is(err, want) {
					t.Errorf("error %v lacks %v", err, want)
				}
			}
		})
	}
}

func TestRequire(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	set, err := methodkind.NewProtoset(fileSet(testgrpc.File_grpc_testing_test_proto, true))
	if err != nil {
		t.Fatal(err)
	}
	r := methodkind.Chain(
		methodkind.Patterns{{Match: "/pkg.Svc/Watch", Kind: methodkind.ServerStreaming}},
		set,
		methodkind.NewReflection(nil),
	)

	if k, err := methodkind.Require(ctx, r, "/pkg.Svc/Watch"); err != nil || k != methodkind.ServerStreaming {
		t.Errorf("Require(known) = %v, %v", k, err)
	}
	if k, err := methodkind.Require(ctx, r, "/grpc.testing.TestService/StreamingInputCall"); err != nil || k != methodkind.ClientStreaming {
		t.Errorf("Require(in protoset) = %v, %v", k, err)
	}

	k, err := methodkind.Require(ctx, r, "/pkg.Svc/M")
	if k != methodkind.Unknown {
		t.Errorf("Require(unknown) kind = %v", k)
	}
	st := status.Convert(err)
	const want = "methodkind: cannot tell the kind of /pkg.Svc/M: not in config patterns, protoset or upstream reflection"
	if st.Code() != codes.Unimplemented || st.Message() != want {
		t.Errorf("Require(unknown) = %v %q, want Unimplemented %q", st.Code(), st.Message(), want)
	}
}

func TestRequireMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	unknown := methodkind.ResolverFunc(func(context.Context, string) (methodkind.Kind, error) {
		return methodkind.Unknown, nil
	})
	failing := methodkind.ResolverFunc(func(context.Context, string) (methodkind.Kind, error) {
		return methodkind.Unknown, errors.New("upstream down")
	})
	tests := []struct {
		name string
		r    methodkind.Resolver
		want string
	}{
		{"patterns alone", methodkind.Patterns(nil), "not in config patterns"},
		{"two sources", methodkind.Chain(methodkind.Patterns(nil), methodkind.NewReflection(nil)), "not in config patterns or upstream reflection"},
		{"nested chains", methodkind.Chain(methodkind.Chain(methodkind.Patterns(nil)), unknown), "not in config patterns or custom resolver"},
		{"empty chain", methodkind.Chain(), "no resolver configured"},
		{"errors reported", methodkind.Chain(methodkind.Patterns(nil), failing), "not in config patterns or custom resolver (upstream down)"},
	}
	for _, tt := range tests {
		k, err := methodkind.Require(ctx, tt.r, "/a.B/C")
		st := status.Convert(err)
		if k != methodkind.Unknown || st.Code() != codes.Unimplemented || !strings.HasSuffix(st.Message(), "/a.B/C: "+tt.want) {
			t.Errorf("%s: Require = %v, %v %q; want Unimplemented ending %q", tt.name, k, st.Code(), st.Message(), tt.want)
		}
	}
}

func TestRequireContextEnded(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := methodkind.ResolverFunc(func(ctx context.Context, _ string) (methodkind.Kind, error) {
		return methodkind.Unknown, ctx.Err()
	})
	if _, err := methodkind.Require(ctx, r, "/a.B/C"); status.Code(err) != codes.Canceled {
		t.Errorf("Require with a cancelled ctx = %v, want Canceled", err)
	}
	// A resolver that knows answers even then.
	if k, err := methodkind.Require(ctx, methodkind.Patterns{{Match: "*", Kind: methodkind.Unary}}, "/a.B/C"); err != nil || k != methodkind.Unary {
		t.Errorf("Require = %v, %v; want unary", k, err)
	}
}
