package service

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"

	"github.com/doorman-project/doorman/daemon"
)

// SockDiag is a ConnTracker backed by the kernel's sock_diag netlink
// interface: one exact lookup of the connection's socket per check, no
// external process, no dump of the socket table. Safe for concurrent use.
type SockDiag struct {
	mu sync.Mutex
	c  *netlink.Conn
}

var _ daemon.ConnTracker = (*SockDiag)(nil)

// NewSockDiag opens the sock_diag socket in the calling thread's network
// namespace.
func NewSockDiag() (*SockDiag, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	return &SockDiag{c: c}, nil
}

// Close closes the netlink socket.
func (s *SockDiag) Close() error { return s.c.Close() }

// State implements daemon.ConnTracker. An IPv4 connection to a dual-stack
// listener (bound to "::" without IPV6_V6ONLY, as Go and Java servers are)
// lives in an IPv6 socket with IPv4-mapped addresses, so it is looked up
// there too. A failed lookup counts as no socket.
func (s *SockDiag) State(local, remote netip.AddrPort) daemon.ConnState {
	st, err := s.lookup(local, remote)
	if err == nil && st == daemon.ConnNone && local.Addr().Is4() {
		mapped := func(a netip.AddrPort) netip.AddrPort {
			return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
		}
		st, err = s.lookup(mapped(local), mapped(remote))
	}
	if err != nil {
		return daemon.ConnNone
	}
	return st
}

// inet_diag_req_v2 and inet_diag_msg, from linux/inet_diag.h.
const (
	inetDiagReqLen = 56 // family, protocol, ext, pad, states, inet_diag_sockid (48)
	inetDiagMsgMin = 4  // family, state, timer, retrans
	noCookie       = ^uint32(0)
)

// lookup asks for the one socket of the 4-tuple (not a dump).
func (s *SockDiag) lookup(local, remote netip.AddrPort) (daemon.ConnState, error) {
	req := make([]byte, inetDiagReqLen)
	fam := byte(unix.AF_INET)
	if local.Addr().Is6() {
		fam = unix.AF_INET6
	}
	req[0], req[1] = fam, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(req[4:], ^uint32(0)) // every state
	id := req[8:]
	binary.BigEndian.PutUint16(id[0:], local.Port())
	binary.BigEndian.PutUint16(id[2:], remote.Port())
	la, ra := local.Addr().AsSlice(), remote.Addr().AsSlice()
	copy(id[4:20], la)
	copy(id[20:36], ra)
	binary.NativeEndian.PutUint32(id[40:], noCookie)
	binary.NativeEndian.PutUint32(id[44:], noCookie)
	s.mu.Lock()
	msgs, err := s.c.Execute(netlink.Message{
		Header: netlink.Header{Type: netlink.HeaderType(unix.SOCK_DIAG_BY_FAMILY), Flags: netlink.Request},
		Data:   req,
	})
	s.mu.Unlock()
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return daemon.ConnNone, nil
		}
		return daemon.ConnNone, err
	}
	for _, m := range msgs {
		if len(m.Data) >= inetDiagMsgMin {
			return fromTCPState(m.Data[1]), nil
		}
	}
	return daemon.ConnNone, nil
}

// TCP states, from include/net/tcp_states.h.
const (
	tcpEstablished = 1
	tcpSynRecv     = 3
	tcpFinWait1    = 4
	tcpFinWait2    = 5
	tcpTimeWait    = 6
	tcpClose       = 7
	tcpCloseWait   = 8
	tcpLastAck     = 9
	tcpClosing     = 11
	tcpNewSynRecv  = 12
)

func fromTCPState(st uint8) daemon.ConnState {
	switch st {
	case tcpSynRecv, tcpNewSynRecv:
		return daemon.ConnHandshake
	case tcpEstablished, tcpCloseWait, tcpFinWait1, tcpFinWait2, tcpLastAck, tcpClosing:
		return daemon.ConnEstablished
	case tcpTimeWait, tcpClose:
		return daemon.ConnClosed
	}
	return daemon.ConnNone // LISTEN, or anything unknown
}
