package ratelimit_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/ratelimit"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Limit each tenant to a burst of two calls and one call per second after
// that, on a fake clock, and send the filter calls as the proxy would.
func Example() {
	now := time.Date(2030, 1, 1, 12, 0, 0, 0, time.UTC)
	f, err := ratelimit.New(ratelimit.Config{Rate: 1, Burst: 2, Key: "header:x-tenant"},
		ratelimit.WithClock(func() time.Time { return now }))
	if err != nil {
		fmt.Println(err)
		return
	}
	call := func(tenant string) {
		md := metadata.Pairs("x-tenant", tenant)
		err := f.OnRequestHeaders(context.Background(), &pipeline.Call{Inbound: md, Header: pipeline.OutboundHeader(md)})
		st := status.Convert(err)
		fmt.Printf("%s: %v", tenant, st.Code())
		for _, d := range st.Details() {
			if ri, ok := d.(*errdetails.RetryInfo); ok {
				fmt.Printf(" %q, retry in %v", st.Message(), ri.GetRetryDelay().AsDuration())
			}
		}
		fmt.Println()
	}

	call("acme")
	call("acme")
	call("acme")
	call("umbrella")
	now = now.Add(time.Second)
	call("acme")
	// Output:
	// acme: OK
	// acme: OK
	// acme: ResourceExhausted "rate_limit: rate limit exceeded", retry in 1s
	// umbrella: OK
	// acme: OK
}
