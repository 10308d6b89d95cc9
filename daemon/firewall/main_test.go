package firewall

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives the tests: Close
// must end the routines a backend started (claims, upkeep, retries), and
// so must a crash's stand-in, abandon.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
