//go:build !linux

package service

import (
	"errors"
	"net/netip"

	"github.com/doorman-project/doorman/daemon"
)

// SockDiag is the Linux connection tracker.
type SockDiag struct{}

// NewSockDiag fails: sock_diag exists only on Linux.
func NewSockDiag() (*SockDiag, error) { return nil, errors.ErrUnsupported }

// Close does nothing.
func (*SockDiag) Close() error { return nil }

// State implements daemon.ConnTracker.
func (*SockDiag) State(netip.AddrPort, netip.AddrPort) daemon.ConnState { return daemon.ConnNone }
