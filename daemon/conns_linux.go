package daemon

import (
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SockDiag is a ConnTracker backed by the kernel's sock_diag netlink
// interface: one exact lookup per check, no external process.
type SockDiag struct{}

var _ ConnTracker = SockDiag{}

// State implements ConnTracker.
func (SockDiag) State(local, remote netip.AddrPort) ConnState {
	s, err := netlink.SocketGet(net.TCPAddrFromAddrPort(local), net.TCPAddrFromAddrPort(remote))
	if err != nil || s == nil {
		return ConnEnded
	}
	// The kernel falls back to the listening socket when the connection
	// is gone; only a socket for this remote port counts.
	if s.ID.DestinationPort != remote.Port() {
		return ConnEnded
	}
	return fromTCPState(s.State)
}

func fromTCPState(st uint8) ConnState {
	switch st {
	case netlink.TCP_SYN_RECV, netlink.TCP_NEW_SYN_REC:
		return ConnHandshake
	case netlink.TCP_ESTABLISHED, netlink.TCP_CLOSE_WAIT, netlink.TCP_FIN_WAIT1, netlink.TCP_FIN_WAIT2,
		netlink.TCP_LAST_ACK, netlink.TCP_CLOSING:
		return ConnEstablished
	}
	return ConnEnded // TIME_WAIT, CLOSE, LISTEN
}

// FindFrom implements ConnTracker with a dump of the family's TCP sockets.
func (SockDiag) FindFrom(local netip.AddrPort, src netip.Addr) (uint16, bool) {
	family := uint8(unix.AF_INET)
	if local.Addr().Is6() {
		family = unix.AF_INET6
	}
	socks, err := netlink.SocketDiagTCP(family)
	if err != nil {
		return 0, false
	}
	for _, s := range socks {
		if s.ID.SourcePort != local.Port() || s.State == netlink.TCP_LISTEN {
			continue
		}
		dst, ok := netip.AddrFromSlice(s.ID.Destination)
		if ok && dst.Unmap() == src.Unmap() {
			return s.ID.DestinationPort, true
		}
	}
	return 0, false
}
