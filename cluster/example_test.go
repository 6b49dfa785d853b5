package cluster_test

import (
	"fmt"
	"time"

	"github.com/manifold-grpc/manifold/cluster"
)

// A cluster with circuit breakers and retries of idempotent methods; a
// mistake is reported with the field's yaml path.
func ExampleConfig_Validate() {
	cfg := cluster.Config{
		Name:            "users",
		Target:          "dns:///users.internal:9090",
		CircuitBreakers: cluster.CircuitBreakers{MaxRequests: 1000, MaxPending: 100},
		Retry: []cluster.RetryPolicy{
			// Every method of the read-only service, with the defaults:
			// 3 attempts, on UNAVAILABLE.
			{Methods: []string{"users.v1.UserQueries"}},
			{Methods: []string{"/users.v1.Users/SetEmail"}, MaxAttempts: 6, InitialBackoff: 50 * time.Millisecond},
		},
	}
	fmt.Println(cfg.Validate())
	cfg.Retry[1].MaxAttempts = 2
	fmt.Println(cfg.Validate())
	// Output:
	// cluster "users": retry[1].max_attempts: must be 2 to 5, not 6
	// <nil>
}
