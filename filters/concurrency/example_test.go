package concurrency_test

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/concurrency"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Admit two calls at a time, as the proxy would run the filter's hooks: a
// third call is refused until one of the first two ends.
func Example() {
	f, err := concurrency.New(concurrency.Config{MaxConcurrent: 2})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	start := func(name string) *pipeline.Call {
		c := &pipeline.Call{Method: "/orders.v1.Orders/" + name}
		err := f.OnRequestHeaders(ctx, c)
		fmt.Printf("%s: %v %s (in flight: %d)\n", name, status.Code(err), status.Convert(err).Message(), f.InFlight())
		return c
	}
	end := func(c *pipeline.Call) {
		f.OnResponseEnd(ctx, c, &pipeline.End{Status: status.New(codes.OK, "")})
	}

	a := start("A")
	b := start("B")
	start("C")
	end(a)
	d := start("D")
	end(b)
	end(d)
	fmt.Println("in flight at the end:", f.InFlight())
	// Output:
	// A: OK  (in flight: 1)
	// B: OK  (in flight: 2)
	// C: ResourceExhausted concurrency_limit: 2 calls in flight (in flight: 2)
	// D: OK  (in flight: 2)
	// in flight at the end: 0
}
