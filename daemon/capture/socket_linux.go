//go:build linux

package capture

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// linkTypeSocket is LinkType of a ModeSocket Conn.
const linkTypeSocket = "udp socket"

// openSocket opens the UDP socket of ModeSocket: one dual-stack IPv6
// socket (IPv4 knocks arrive v4-mapped), or an IPv4 one when the kernel has
// no IPv6. IPV6_RECVPKTINFO / IP_PKTINFO report each datagram's
// destination address and arrival device; an IP_PKTINFO message also
// marks a datagram that came over IPv4. The kernel filter of the other
// modes, applied to the UDP socket, keeps junk, IP options and IPv6
// extension headers out.
func (c *Conn) openSocket() error {
	c.socket = true
	b := &binding{linkType: linkTypeSocket, hdrHow: "socket"}
	v6 := true
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if errors.Is(err, unix.EAFNOSUPPORT) {
		v6 = false
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	}
	if err != nil {
		return fmt.Errorf("socket(udp): %w", err)
	}
	c.file = os.NewFile(uintptr(fd), "capture:"+c.cfg.Interface)
	if !c.any {
		if b.ifIndex, b.hatype, err = ifInfo(fd, c.cfg.Interface); err != nil {
			return err
		}
		b.loopback = b.hatype == arphrdLoopback
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, c.cfg.Interface); err != nil {
			return fmt.Errorf("setsockopt(SO_BINDTODEVICE): %w", err)
		}
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvBufSize) != nil {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvBufSize); err != nil {
			c.log.Warn("capture: cannot set the receive buffer size", "err", err)
		}
	}
	if err := attachFilter(fd, c.filterSpec(b)); err != nil {
		return err
	}
	var sa unix.Sockaddr
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fmt.Errorf("setsockopt(IPV6_V6ONLY): %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fmt.Errorf("setsockopt(IPV6_RECVPKTINFO): %w", err)
		}
		sa = &unix.SockaddrInet6{Port: int(c.cfg.KnockPort)}
	}
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		return fmt.Errorf("setsockopt(IP_PKTINFO): %w", err)
	}
	if !v6 {
		sa = &unix.SockaddrInet4{Port: int(c.cfg.KnockPort)}
	}
	c.bind.Store(b)
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind udp port %d: %w", c.cfg.KnockPort, err)
	}
	c.buf = make([]byte, socketBufSize)
	c.iov.Base = &c.buf[0]
	c.iov.SetLen(len(c.buf))
	c.msg.Name = (*byte)(unsafe.Pointer(&c.name))
	c.msg.Iov = &c.iov
	c.msg.Iovlen = 1
	c.msg.Control = &c.oob[0]
	c.recvFn = c.recvmsg
	return nil
}

// recvmsg is the RawConn read callback of ModeSocket: one recvmsg into the
// Conn's buffers. It reports false (wait for readability) on EAGAIN.
func (c *Conn) recvmsg(fd uintptr) bool {
	for {
		c.msg.Namelen = uint32(unsafe.Sizeof(c.name))
		c.msg.SetControllen(len(c.oob))
		c.msg.Flags = 0
		n, _, errno := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&c.msg)), 0)
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), errno
		return true
	}
}

// readSocket receives and handles one datagram of ModeSocket.
func (c *Conn) readSocket(p *Packet) (skip bool, err error) {
	if err := c.rc.Read(c.recvFn); err != nil {
		if c.closed.Load() {
			return false, c.errClosed
		}
		return false, &waitError{err}
	}
	if c.rerr != 0 {
		if c.closed.Load() {
			return false, c.errClosed
		}
		return false, &waitError{fmt.Errorf("recvmsg: %w", c.rerr)}
	}
	payload := c.buf[:c.rn]
	b := c.bind.Load()
	if c.cfg.HexDump != nil {
		writeHexDump(c.cfg.HexDump, dumpInfo{ifIndex: b.ifIndex, linkType: b.linkType, hdrHow: b.hdrHow, vlan: -1}, payload)
	}
	if c.msg.Flags&unix.MSG_TRUNC != 0 {
		return false, ErrTruncated
	}
	if !mayBeKnock(payload) {
		return false, ErrNotCandidate // the filter keeps these out
	}
	pk := Packet{DstPort: c.cfg.KnockPort, Payload: payload}
	var v4 bool
	switch c.name.Addr.Family {
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.name))
		pk.Src = netip.AddrFrom16(sa.Addr)
		pk.SrcPort = htons(sa.Port)
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.name))
		pk.Src = netip.AddrFrom4(sa.Addr)
		pk.SrcPort = htons(sa.Port)
	default:
		return false, ErrTruncated
	}
	pk.Dst, pk.IfIndex, v4 = pktInfo(c.oob[:c.msg.Controllen])
	if !pk.Dst.IsValid() {
		return false, ErrTruncated
	}
	if v4 {
		// An IPv4 datagram on the dual-stack socket: its addresses come
		// v4-mapped. A real IPv6 packet keeps its form and is refused below.
		pk.Src = pk.Src.Unmap()
		if !pk.Src.Is4() || martian4(pk.Src.As4()) {
			return false, ErrMartian
		}
	} else if s, d := pk.Src.As16(), pk.Dst.As16(); embedsIPv4(s) || embedsIPv4(d) || s[0] == 0xff || s == [16]byte{} {
		return false, ErrMartian
	}
	// The socket cannot see the device a datagram came over: IP_PKTINFO
	// names the device of the destination address for the host's own
	// traffic over lo. A datagram from an own or loopback address came
	// from this host (the kernel refuses such sources from outside).
	arrivedLo := b.loopback || c.watch.isLoopbackIndex(pk.IfIndex) || pk.Src.IsLoopback() || c.watch.isLocal(pk.Src)
	if err := c.checkAddrs(&pk, arrivedLo, b.loopback); err != nil {
		return false, err
	}
	*p = pk
	return false, nil
}

// pktInfo finds the destination address and arrival device in the control
// messages of a UDP recvmsg, and whether the datagram came over IPv4 (an
// IP_PKTINFO message, which the kernel gives only for IPv4).
func pktInfo(oob []byte) (dst netip.Addr, ifIndex int, v4 bool) {
	forEachCmsg(oob, func(level, typ int32, data []byte) {
		switch {
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo && !v4:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			dst, ifIndex = netip.AddrFrom16(pi.Addr), int(pi.Ifindex)
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			dst, ifIndex, v4 = netip.AddrFrom4(pi.Addr), int(pi.Ifindex), true
		}
	})
	return dst, ifIndex, v4
}
