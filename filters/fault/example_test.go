package fault_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/manifold-grpc/manifold/filters/fault"
	"github.com/manifold-grpc/manifold/pipeline"
)

// Abort a quarter of the calls with UNAVAILABLE, with a scripted source of
// randomness in place of the default one, and delay the rest by 2s
// (waited out by a fake that only prints).
func Example() {
	draws := []float64{0.10, 0.80, 0.24, 0.25}
	f, err := fault.New(fault.Config{
		Delay: &fault.Delay{Duration: 2 * time.Second},
		Abort: &fault.Abort{Code: "UNAVAILABLE", Message: "injected outage", Percent: new(25.0)},
	},
		fault.WithRandom(func() float64 { d := draws[0]; draws = draws[1:]; return d }),
		fault.WithWait(func(_ context.Context, d time.Duration) error {
			fmt.Printf("delayed %v, then ", d)
			return nil
		}))
	if err != nil {
		fmt.Println(err)
		return
	}
	for i := range 4 {
		md := metadata.MD{}
		fmt.Printf("call %d: ", i)
		err := f.OnRequestHeaders(context.Background(), &pipeline.Call{Inbound: md, Header: md.Copy()})
		st := status.Convert(err)
		fmt.Printf("%v %q\n", st.Code(), st.Message())
	}
	// Output:
	// call 0: delayed 2s, then Unavailable "injected outage"
	// call 1: delayed 2s, then OK ""
	// call 2: delayed 2s, then Unavailable "injected outage"
	// call 3: delayed 2s, then OK ""
}
