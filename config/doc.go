// Package config reads Manifold's YAML configuration file and builds the
// running proxy from it: listeners, clusters, fan-out groups, the global
// filter chain and the routes.
//
// Filters are named by their registry name ([pipeline.Register]) and
// configured with their own typed config struct, so a user's filter
// registered in Go appears in the same file as the built-ins:
//
//	filters:                 # the global chain, outermost first
//	  - logging: {}
//	routes:
//	  - name: users
//	    match: {service: users.v1.Users}
//	    filters:
//	      - auth: {providers: [...]}
//	    route: users         # one-to-one to a cluster
//	  - name: machines
//	    match: {prefix: /machine.}
//	    fanout: machines     # one-to-many to a fan-out group
//
// Decoding is strict: unknown fields are errors. Every error names the file,
// line and column, and the field path, and all errors are reported together
// (see [Load]). ${VAR} and ${VAR:-default} in values are replaced from the
// environment; an unset variable without a default is an error.
package config
