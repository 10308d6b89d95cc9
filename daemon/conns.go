package daemon

import "net/netip"

// ConnState is what the kernel says of a TCP connection.
type ConnState uint8

// Connection states, as far as a door cares.
const (
	ConnEnded       ConnState = iota // no socket, or TIME-WAIT/CLOSE (CLASSIC-6.6)
	ConnHandshake                    // SYN received, not yet established
	ConnEstablished                  // established or closing with data still allowed
)

// ConnTracker reads the kernel's TCP connection table. The engine polls it;
// it never runs an external program (0.81 polled lsof).
type ConnTracker interface {
	// State returns the state of the connection local <- remote.
	State(local, remote netip.AddrPort) ConnState
	// FindFrom returns the source port of a connection from src to local,
	// if there is one (used when capture cannot deliver SYNs).
	FindFrom(local netip.AddrPort, src netip.Addr) (uint16, bool)
}
