// Package serve is the server side of the benchmark's child processes
// (backend, floor, mwitkow): serve on an address, announce it the way the
// drivers read it, and run until told to stop.
package serve
