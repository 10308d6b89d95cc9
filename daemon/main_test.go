package daemon

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: Run must
// end every routine it starts (the receive loop, the door loop, stats), on
// every path out.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
