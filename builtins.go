package manifold

// The built-in filters, registered by name for config files. A user's own
// binary imports these and its own filter packages the same way.
import (
	_ "github.com/manifold-grpc/manifold/filters/auth"
	_ "github.com/manifold-grpc/manifold/filters/clientcert"
	_ "github.com/manifold-grpc/manifold/filters/concurrency"
	_ "github.com/manifold-grpc/manifold/filters/fault"
	_ "github.com/manifold-grpc/manifold/filters/logging"
	_ "github.com/manifold-grpc/manifold/filters/metadata"
	_ "github.com/manifold-grpc/manifold/filters/ratelimit"
	_ "github.com/manifold-grpc/manifold/filters/tracing"
)
