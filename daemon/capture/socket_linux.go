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
// destination address and arrival device.
func (c *Conn) openSocket() error {
	if c.cfg.SYN {
		return errors.New("socket mode cannot see TCP SYNs: door tracking must use the firewall or sock_diag")
	}
	c.socket = true
	c.linkType = linkTypeSocket
	c.hdrHow = "socket"
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
	if c.cfg.Interface != AnyInterface {
		if c.ifIndex, _, err = ifInfo(fd, c.cfg.Interface); err != nil {
			return err
		}
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, c.cfg.Interface); err != nil {
			return fmt.Errorf("setsockopt(SO_BINDTODEVICE): %w", err)
		}
	}
	setRcvBuf(fd, c.log)
	var sa unix.Sockaddr
	if v6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
			return fmt.Errorf("setsockopt(IPV6_V6ONLY): %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return fmt.Errorf("setsockopt(IPV6_RECVPKTINFO): %w", err)
		}
		sa = &unix.SockaddrInet6{Port: int(c.cfg.KnockPort)}
	} else {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			return fmt.Errorf("setsockopt(IP_PKTINFO): %w", err)
		}
		sa = &unix.SockaddrInet4{Port: int(c.cfg.KnockPort)}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bind udp port %d: %w", c.cfg.KnockPort, err)
	}
	return nil
}

// readSocket handles one datagram of ModeSocket.
func (c *Conn) readSocket(p *Packet, payload []byte) error {
	if c.cfg.HexDump != nil {
		writeHexDump(c.cfg.HexDump, dumpInfo{ifIndex: c.ifIndex, linkType: c.linkType, hdrHow: c.hdrHow, vlan: -1}, payload)
	}
	if c.msg.Flags&unix.MSG_TRUNC != 0 {
		return ErrTruncated
	}
	pk := Packet{Proto: ProtoUDP, DstPort: c.cfg.KnockPort, Payload: payload}
	switch c.name.Addr.Family {
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&c.name))
		pk.Src = netip.AddrFrom16(sa.Addr).Unmap()
		pk.SrcPort = htons(sa.Port)
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&c.name))
		pk.Src = netip.AddrFrom4(sa.Addr)
		pk.SrcPort = htons(sa.Port)
	default:
		return ErrTruncated
	}
	pk.Dst, pk.IfIndex = pktInfo(c.oob[:c.msg.Controllen])
	if !pk.Dst.IsValid() {
		return ErrTruncated
	}
	if !c.addrs.isLocal(pk.Dst) {
		return ErrNotLocal // a broadcast or multicast datagram
	}
	*p = pk
	return nil
}

// pktInfo finds the destination address and arrival device in the control
// messages of a UDP recvmsg.
func pktInfo(oob []byte) (dst netip.Addr, ifIndex int) {
	forEachCmsg(oob, func(level, typ int32, data []byte) {
		switch {
		case level == unix.IPPROTO_IPV6 && typ == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			pi := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			dst, ifIndex = netip.AddrFrom16(pi.Addr).Unmap(), int(pi.Ifindex)
		case level == unix.IPPROTO_IP && typ == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			pi := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			dst, ifIndex = netip.AddrFrom4(pi.Addr), int(pi.Ifindex)
		}
	})
	return dst, ifIndex
}
