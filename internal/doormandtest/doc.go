// Package doormandtest runs the real doormand for tests and scenarios and
// reads what it reports: Start writes a configuration and guest list,
// starts doormand -D --events in a host (an internal/netsim namespace) and
// returns once the daemon's ready event says its firewall is in place; the
// Daemon then gives typed waits on the event stream (Wait, Count, Last with
// Match predicates such as Accepted, Rejected, DoorState and Closed),
// signals (Reload, Counters, Stop, Kill, Restart) and, for people only, the
// log.
//
// Tests never read the log: its wording is free to change. The event
// stream's schema (README "Event stream") is what this package decodes, so
// its tests are the schema's too.
//
// Serve and Dial are the greeting service behind a door and the client that
// proves a door let it through; Build and Binaries provide the binaries.
package doormandtest
