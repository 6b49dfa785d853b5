package methodkind_test

import (
	"context"
	"fmt"

	"github.com/manifold-grpc/manifold/methodkind"
)

func Example() {
	// Config rules, first match wins.
	patterns := methodkind.Patterns{
		{Match: "/chat.Room/Join", Kind: methodkind.BidiStreaming},
		{Match: "/chat.Room/*", Kind: methodkind.Unary},
		{Match: "/logs.*", Kind: methodkind.ServerStreaming},
	}
	if err := patterns.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	// In a proxy: methodkind.Chain(patterns, protoset, methodkind.NewReflection(conns)).
	kinds := methodkind.Chain(patterns)

	ctx := context.Background()
	for _, method := range []string{"/chat.Room/Join", "/chat.Room/Leave", "/logs.Tail/Follow", "/billing.Invoices/Get"} {
		kind, err := methodkind.Require(ctx, kinds, method)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%s: %s (server streams: %t)\n", method, kind, kind.ServerStreams())
	}
	// Output:
	// /chat.Room/Join: bidi_streaming (server streams: true)
	// /chat.Room/Leave: unary (server streams: false)
	// /logs.Tail/Follow: server_streaming (server streams: true)
	// rpc error: code = Unimplemented desc = methodkind: cannot tell the kind of /billing.Invoices/Get: not in config patterns
}

func ExamplePatterns_Validate() {
	patterns := methodkind.Patterns{
		{Match: "/chat.Room/*", Kind: methodkind.Unary},
		{Match: "chat.Room/Join", Kind: methodkind.BidiStreaming},
		{Match: "/logs.*"},
	}
	fmt.Println(patterns.Validate())
	// Output:
	// methodkind: patterns[1]: match "chat.Room/Join" must start with "/" or be "*"
	// methodkind: patterns[2]: match "/logs.*": kind must be unary, client_streaming, server_streaming or bidi_streaming, not unknown
}
