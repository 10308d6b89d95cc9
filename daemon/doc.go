// Package daemon is the doorman engine: it reads candidate packets from a
// capture source, verifies knocks in the spec's order (spec/doorman.md
// section 4), records them in the replay store, and drives every door
// through its lifecycle (section 6) from one door loop.
//
// The engine owns no operating-system resources itself: the capture source,
// the firewall backend, the connection tracker and the replay store are
// handed in, each behind a small interface declared here, so tests drive the
// engine with fakes and daemon/service wires in the real ones
// (daemon/capture, daemon/firewall, daemon/replay, service.SockDiag) with
// the pid file, logs, events file, signals and reload.
//
// Goroutines, all started and ended by Run: RoutineReceive (the hot path),
// the door loop, and routineStats for periodic counters.
package daemon
