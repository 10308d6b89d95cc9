//go:build !linux

package daemon

import "net/netip"

// SockDiag is the Linux sock_diag ConnTracker; elsewhere it sees nothing.
type SockDiag struct{}

// State implements ConnTracker.
func (SockDiag) State(local, remote netip.AddrPort) ConnState { return ConnEnded }

// FindFrom implements ConnTracker.
func (SockDiag) FindFrom(local netip.AddrPort, src netip.Addr) (uint16, bool) { return 0, false }
