// Package configtest holds checks that the tests of filter configs share:
// that Validate reports exactly the expected problems, that the filter's
// constructor refuses what Validate refuses, naming the filter, and that
// the filter module registers, decodes and reports located errors through
// config files ([FilterFile]).
package configtest
