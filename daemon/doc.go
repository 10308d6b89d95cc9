// Package daemon is the doorman engine: it reads candidate packets from a
// capture source, verifies classic knocks in the spec's order
// (spec/doorman.md section 4) and modern ones in theirs (section 12.4),
// records them in the replay store or the stamp store, and drives every
// door through its lifecycle (section 6) from one door loop.
//
// The engine owns no operating-system resources itself: the capture source,
// the firewall backend, the connection tracker, the replay store and the
// stamp store are handed in, each behind a small interface declared here,
// so tests drive the engine with fakes and daemon/service wires in the real
// ones (daemon/capture, daemon/firewall, daemon/replay, service.SockDiag)
// with the pid file, logs, events file, signals and reload.
//
// Goroutines, all started and ended by Run: RoutineReceive (one, the hot
// path: classic knocks and the cheap checks of modern ones), routineModern
// (one per CPU, up to four: the public-key work of modern knocks, fed
// through a bounded queue), the door loop (one, every door's state and
// timers) and routineStats for periodic counters.
package daemon
