// Package router picks a route for each call: routes match on the full
// method, the service, a method prefix, the :authority and request metadata
// values, in the order they are listed, first match wins. Each route has
// its own built chain and terminal. A call that matches no route ends with
// UNIMPLEMENTED naming its method.
//
// A [Router] is a [pipeline.Handler], so it is the terminal of the global
// chain: global filters run first, and their request header changes are
// visible to matching.
package router
