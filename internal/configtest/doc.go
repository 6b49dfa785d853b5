// Package configtest holds checks that the tests of filter configs share:
// that Validate reports exactly the expected problems, and that the filter's
// constructor refuses what Validate refuses, naming the filter.
package configtest
