//go:build !linux

package daemon

import (
	"errors"
	"net/netip"
)

// SockDiag is the Linux connection tracker.
type SockDiag struct{}

// NewSockDiag fails: sock_diag exists only on Linux.
func NewSockDiag() (*SockDiag, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (*SockDiag) Close() error { return nil }

// State implements ConnTracker.
func (*SockDiag) State(netip.AddrPort, netip.AddrPort) ConnState { return ConnNone }
