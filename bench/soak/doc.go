// Command soak runs Manifold for a long time under mixed load with faults
// and checks that nothing is lost and nothing grows.
//
// Run it from the bench/ directory:
//
//	go run ./soak                      # 10 minutes
//	go run ./soak -duration 1m -json soak.json
//
// It builds the real binary (cmd/manifold, from the product's module) and
// runs it as its own process in config mode (manifold --config FILE), with
// the listener and the admin listener on ports the system picks, the
// access log on, a one-to-one route (service soak.v1.Soak) to a cluster of
// two backends and a fan-out route (service soak.v1.Fan) to a group of
// three. The five backends are grpc-go servers in this process, so that a
// fault can kill one (grpc.Server.Stop: connections closed, calls failed)
// and restart it on the same address. Their services have no .proto:
// requests and answers are built with protowire (see wire.go).
//
// Workers (-concurrency, paced to -rate calls a second) make unary and
// server-streaming calls on both routes. A backend numbers the items it
// sends in one call 0, 1, 2, …; the client checks, per backend, that the
// numbers arrive in order without gaps, and that on an OK call every
// backend that did not fail delivered all of them. Fan-out items are
// attributed to members by the metadata the proxy splices into them
// (Talos layout); a member that failed must have sent a prefix of its
// items, then exactly one error item, and unary answers must hold the
// members' items in member order. Any missing item counts as lost;
// duplicates, disorder, cross-talk between calls or wrong attribution
// count as anomalies.
//
// Faults: backends killed and restarted on a seeded random schedule,
// client connections replaced, and call variants that read slowly,
// cancel mid-call, let the deadline expire or make a backend fail.
//
// Every -sample it reads the proxy's go_goroutines, process_open_fds and
// process_resident_memory_bytes from the admin /metrics, and its open FDs,
// RSS and CPU time from /proc. The report (markdown on standard output,
// and -json) has the calls by kind, variant and code, the items received
// and lost, the faults, a time series, and a plateau check: the maximum of
// each resource in the last third of the run against the middle third.
//
// The exit status is 1 when an item was lost, an answer was wrong, a
// resource did not plateau, or the proxy did not shut down cleanly on
// SIGTERM; 2 for bad flags.
package main
