//go:build !linux

package service

import (
	"net/netip"

	"github.com/doorman-project/doorman/daemon"
)

// SockDiag is the Linux connection tracker; elsewhere every connection
// looks gone, so doors close after connection-delay-1.
type SockDiag struct{}

// State implements daemon.ConnTracker.
func (SockDiag) State(netip.AddrPort, netip.AddrPort) daemon.ConnState { return daemon.ConnNone }
