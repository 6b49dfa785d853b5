package methodkind

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Resolver learns the kind of a method.
//
// Kind returns [Unknown] and a nil error when the resolver simply does not
// know the method; it returns an error only for a failure worth reporting,
// such as a reflection transport error, and then the kind is [Unknown]. A
// Resolver that knows the kind returns it with a nil error.
//
// fullMethod is gRPC's full method name, "/pkg.Service/Method".
//
// Implementations must be safe for concurrent use.
type Resolver interface {
	Kind(ctx context.Context, fullMethod string) (Kind, error)
}

// ResolverFunc adapts a function to [Resolver].
type ResolverFunc func(ctx context.Context, fullMethod string) (Kind, error)

// Kind calls f.
func (f ResolverFunc) Kind(ctx context.Context, fullMethod string) (Kind, error) {
	return f(ctx, fullMethod)
}

// sourcer names where a resolver looks, for [Require]'s message.
type sourcer interface{ source() string }

// sources returns the names of the places r looks.
func sources(r Resolver) []string {
	switch r := r.(type) {
	case chain:
		var names []string
		for _, sub := range r {
			names = append(names, sources(sub)...)
		}
		return names
	case sourcer:
		return []string{r.source()}
	default:
		return []string{"custom resolver"}
	}
}

// chain is what [Chain] returns.
type chain []Resolver

// Chain returns a [Resolver] that asks rs in order. The first answer that is
// not [Unknown] wins and later resolvers are not asked. If no resolver knows
// the method, the result is [Unknown] with the errors of all resolvers
// joined ([errors.Join]), or nil if none failed. Nil resolvers are skipped.
//
// The usual order is config, then protoset, then reflection:
//
//	methodkind.Chain(patterns, protoset, methodkind.NewReflection(conns))
func Chain(rs ...Resolver) Resolver {
	c := make(chain, 0, len(rs))
	for _, r := range rs {
		if r != nil {
			c = append(c, r)
		}
	}
	return c
}

// Kind asks each resolver in turn.
func (c chain) Kind(ctx context.Context, fullMethod string) (Kind, error) {
	var errs []error
	for _, r := range c {
		k, err := r.Kind(ctx, fullMethod)
		if k != Unknown {
			return k, nil
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return Unknown, errors.Join(errs...)
}

// Require is like r.Kind, but a method r does not know is an error: a gRPC
// status with [codes.Unimplemented] and a message naming the method and the
// sources tried, for example
//
//	methodkind: cannot tell the kind of /pkg.Svc/M: not in config patterns, protoset or upstream reflection
//
// followed by the resolvers' errors, if any, in parentheses. If the lookup
// failed because ctx ended, the status is ctx's ([codes.Canceled] or
// [codes.DeadlineExceeded]) instead.
func Require(ctx context.Context, r Resolver, fullMethod string) (Kind, error) {
	k, err := r.Kind(ctx, fullMethod)
	if k != Unknown {
		return k, nil
	}
	if err != nil && ctx.Err() != nil {
		st := status.FromContextError(ctx.Err())
		return Unknown, status.Errorf(st.Code(), "methodkind: kind of %s: %v", fullMethod, err)
	}
	msg := fmt.Sprintf("methodkind: cannot tell the kind of %s: %s", fullMethod, notIn(sources(r)))
	if err != nil {
		msg += " (" + strings.ReplaceAll(err.Error(), "\n", "; ") + ")"
	}
	return Unknown, status.Error(codes.Unimplemented, msg)
}

// notIn phrases a list of sources: "not in a, b or c".
func notIn(names []string) string {
	switch len(names) {
	case 0:
		return "no resolver configured"
	case 1:
		return "not in " + names[0]
	default:
		return "not in " + strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
	}
}

var (
	_ Resolver = ResolverFunc(nil)
	_ Resolver = chain(nil)
)
