package service

import (
	"net"
	"net/netip"

	"github.com/doorman-project/doorman/daemon"
	"github.com/vishvananda/netlink"
)

// SockDiag is a ConnTracker backed by the kernel's sock_diag netlink
// interface: one exact lookup per check, no external process.
type SockDiag struct{}

var _ daemon.ConnTracker = SockDiag{}

// State implements daemon.ConnTracker. An IPv4 connection to a dual-stack
// listener (bound to "::" without IPV6_V6ONLY, as Go and Java servers are)
// lives in an IPv6 socket with IPv4-mapped addresses, so it is looked up
// there too.
func (SockDiag) State(local, remote netip.AddrPort) daemon.ConnState {
	if s := lookup(local, remote); s != daemon.ConnNone || !local.Addr().Is4() {
		return s
	}
	mapped := func(a netip.AddrPort) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	}
	return lookup(mapped(local), mapped(remote))
}

func lookup(local, remote netip.AddrPort) daemon.ConnState {
	s, err := netlink.SocketGet(net.TCPAddrFromAddrPort(local), net.TCPAddrFromAddrPort(remote))
	if err != nil || s == nil {
		return daemon.ConnNone
	}
	// The kernel falls back to the listening socket when the connection
	// is gone; only a socket for this remote port counts.
	if s.ID.DestinationPort != remote.Port() {
		return daemon.ConnNone
	}
	return fromTCPState(s.State)
}

func fromTCPState(st uint8) daemon.ConnState {
	switch st {
	case netlink.TCP_SYN_RECV, netlink.TCP_NEW_SYN_REC:
		return daemon.ConnHandshake
	case netlink.TCP_ESTABLISHED, netlink.TCP_CLOSE_WAIT, netlink.TCP_FIN_WAIT1, netlink.TCP_FIN_WAIT2,
		netlink.TCP_LAST_ACK, netlink.TCP_CLOSING:
		return daemon.ConnEstablished
	case netlink.TCP_TIME_WAIT, netlink.TCP_CLOSE:
		return daemon.ConnClosed
	}
	return daemon.ConnNone // LISTEN, or anything unknown
}
