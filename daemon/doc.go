// Package daemon is the doorman engine: it reads candidate packets from a
// capture source, verifies knocks in the spec's order (spec/doorman.md
// section 4), records them in the replay store, and runs one goroutine per
// door that drives the firewall through the door's lifecycle (section 6).
//
// The engine owns no operating-system resources itself: the capture source,
// the firewall backend, the connection tracker and the replay store are
// handed in, each behind a small interface declared here, so tests drive the
// engine with fakes and the daemon's main wires in the real ones
// (daemon/capture, daemon/firewall, daemon/replay).
//
// Goroutines: RoutineReceive (one, the hot path), one routineDoor per open
// door, routineRetry for firewall rules that failed to go away, and
// routineStats for periodic counters.
package daemon
