// Package procfs reads what the benchmarks measure about a process from
// Linux's /proc: CPU time, resident memory and open file descriptors.
//
// Every function takes a process id and reads the files afresh; they are
// safe for concurrent use. On a system without /proc they return the
// error of the failed read.
package procfs
