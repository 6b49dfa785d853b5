// Command load is Manifold's load benchmark: Manifold next to direct calls,
// next to the leanest pass-through proxy grpc-go allows (the floor), and
// next to mwitkow/grpc-proxy, each proxy its own process.
//
// Run it from the bench/ directory:
//
//	go run ./load -json results.json
//
// It builds ./backend, ./floor and ./mwitkow from this module and the real
// Manifold binary (cmd/manifold) from the product's module into a temporary
// directory, then runs itself again under taskset on core 0 (with the
// backend) and starts every proxy under taskset on core 1, each with
// GOMAXPROCS=1 (no pinning without taskset or with one core). The backend
// is grpc-go's BenchmarkService on three ports; the one-to-one proxies
// forward to the first, Manifold's fan-out (--fanout, with a protoset of the
// service) to all three.
//
// For every scenario and repeat it drives each target in turn, the order
// rotating between repeats, with one closed-loop client over one
// connection: a warm-up, then a measured window in which it records each
// operation's latency, and reads the proxy's CPU time (/proc/PID/stat) and
// peak RSS (VmHWM in /proc/PID/status, reset through clear_refs at the
// start of the window). The idle scenario opens -idle-streams streams
// through a fresh process of each proxy and reports how much its RSS grew
// per stream.
//
// It prints progress to standard error, a markdown table to standard
// output, and with -json every run and the summary. Every child process is
// stopped at the end, on an error and on SIGINT; each also dies with the
// driver (PR_SET_PDEATHSIG).
package main
