//go:build race

package daemon

// raceEnabled reports whether the tests run under the race detector, which
// makes the door loop several times slower: measurements then use fewer
// doors.
const raceEnabled = true
