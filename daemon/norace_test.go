//go:build !race

package daemon

// raceEnabled reports whether the tests run under the race detector.
const raceEnabled = false
