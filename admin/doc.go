// Package admin is Manifold's HTTP admin endpoint, on its own address:
//
//	/healthz  200 while the process runs
//	/readyz   200 when every readiness check passes, 503 naming the failures
//	/config   the active config file, as written (environment references like
//	          ${TOKEN} are shown unexpanded, so secrets from the environment
//	          never appear, and literal secret-looking values are redacted)
//	/metrics  the Prometheus exposition, when a metrics handler is given
//	/reload   POST: reload the config file (422 with the errors if it is bad)
package admin
