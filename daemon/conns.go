package daemon

import "net/netip"

// ConnState is what the kernel says of a TCP connection.
type ConnState uint8

// Connection states, as far as a door cares (CLASSIC-6.5, 6.6).
const (
	// ConnNone: the host has no socket for the connection (never had one,
	// or it is gone without a trace).
	ConnNone ConnState = iota
	// ConnHandshake: SYN received, not yet established.
	ConnHandshake
	// ConnEstablished: established, or closing with data still allowed
	// (CLOSE-WAIT, FIN-WAIT-1/2, CLOSING, LAST-ACK).
	ConnEstablished
	// ConnClosed: the connection was established and has ended; its socket
	// lingers in TIME-WAIT or CLOSE.
	ConnClosed
)

// ended reports whether a door whose connection is in state s has nothing
// left to let through (CLASSIC-6.6).
func (s ConnState) ended() bool { return s == ConnNone || s == ConnClosed }

// ConnTracker reads the kernel's TCP connection table. The engine polls it;
// it never runs an external program (0.81 polled lsof).
type ConnTracker interface {
	// State returns the state of the connection local <- remote.
	State(local, remote netip.AddrPort) ConnState
}
