package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every proxy,
// backend, client and raw connection a test starts is stopped by its end.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
