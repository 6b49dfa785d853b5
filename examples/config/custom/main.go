// Command custom is Manifold with one more filter: a user's own binary
// registers its filters and hands over to manifold.Main, so the filters can
// be named in the config file next to the built-ins.
//
//	BACKEND=127.0.0.1:9090 go run ./examples/config/custom --config examples/config/custom.yaml
package main

import (
	"github.com/manifold-grpc/manifold"
	_ "github.com/manifold-grpc/manifold/examples/config/stamp" // registers "example.stamp"
)

func main() { manifold.Main() }
