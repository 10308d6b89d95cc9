//go:build linux

package main

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/doorman-project/doorman/daemon/capture"
)

// rawSource is a capture of the mutant's own: an AF_PACKET socket on one
// interface, decoding IPv4 and IPv6 UDP datagrams to the knock port. It
// drops IP options and fragments like the real one; whether it checks
// destination addresses and checksums is what the mutants switch off. It
// exists because the real capture's checksum check is no seam.
type rawSource struct {
	fd        int
	ifIndex   int
	knockPort uint16
	local     map[netip.Addr]bool // nil: no destination check
	checksums bool
	buf       []byte
}

func openRawSource(iface string, knockPort uint16, checkDst, checksums bool) (*rawSource, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, err
	}
	s := &rawSource{ifIndex: ifi.Index, knockPort: knockPort, checksums: checksums, buf: make([]byte, 65536)}
	if checkDst {
		addrs, err := ifi.Addrs()
		if err != nil {
			return nil, err
		}
		s.local = map[netip.Addr]bool{}
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				s.local[p.Addr().Unmap()] = true
			}
		}
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(unix.ETH_P_ALL)))
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Wake up now and then, so that Read notices Close.
	tv := unix.Timeval{Usec: 100000}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s.fd = fd
	return s, nil
}

// htons converts to network byte order on any host.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// Close implements daemon.PacketSource.
func (s *rawSource) Close() error {
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
	return unix.Close(s.fd)
}

// Read implements daemon.PacketSource.
func (s *rawSource) Read(p *capture.Packet) error {
	for {
		n, from, err := unix.Recvfrom(s.fd, s.buf, 0)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return fmt.Errorf("recvfrom: %w", net.ErrClosed)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue
		}
		ok, err := s.decode(s.buf[:n], p)
		if err != nil || ok {
			return err
		}
	}
}

// decode fills p from an IP packet; false means not a candidate.
func (s *rawSource) decode(b []byte, p *capture.Packet) (bool, error) {
	*p = capture.Packet{IfIndex: s.ifIndex}
	var l4 []byte
	var pseudo uint32
	var v6 bool
	switch {
	case len(b) >= 20 && b[0]>>4 == 4:
		hl := int(b[0]&0x0f) * 4
		if b[9] != unix.IPPROTO_UDP {
			return false, nil
		}
		if hl != 20 {
			return false, capture.ErrIPOptions
		}
		if binary.BigEndian.Uint16(b[6:])&0x3fff != 0 {
			return false, capture.ErrFragment
		}
		if s.checksums && sum(b[:20], 0) != 0xffff {
			return false, capture.ErrChecksum
		}
		tot := int(binary.BigEndian.Uint16(b[2:]))
		if tot < hl || tot > len(b) {
			return false, capture.ErrTruncated
		}
		p.Src, p.Dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
		l4 = b[hl:tot]
		pseudo = sumAddrs(b[12:20]) + unix.IPPROTO_UDP + uint32(len(l4))
	case len(b) >= 40 && b[0]>>4 == 6:
		switch b[6] {
		case unix.IPPROTO_UDP:
		case unix.IPPROTO_TCP, unix.IPPROTO_ICMPV6:
			return false, nil
		case 44:
			return false, capture.ErrFragment
		default:
			return false, capture.ErrIPOptions
		}
		p.Src, p.Dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
		if p.Src.Is4In6() || p.Dst.Is4In6() {
			return false, capture.ErrMartian
		}
		plen := int(binary.BigEndian.Uint16(b[4:]))
		if 40+plen > len(b) {
			return false, capture.ErrTruncated
		}
		l4 = b[40 : 40+plen]
		pseudo = sumAddrs(b[8:40]) + unix.IPPROTO_UDP + uint32(len(l4))
		v6 = true
	default:
		return false, nil
	}
	if len(l4) < 8 {
		return false, capture.ErrTruncated
	}
	p.SrcPort, p.DstPort = binary.BigEndian.Uint16(l4), binary.BigEndian.Uint16(l4[2:])
	if p.DstPort != s.knockPort {
		return false, nil
	}
	if cs := binary.BigEndian.Uint16(l4[6:]); s.checksums && (cs != 0 || v6) && sum(l4, pseudo) != 0xffff {
		return false, capture.ErrChecksum
	}
	p.Payload = l4[8:]
	if s.local != nil && !s.local[p.Dst] {
		return false, capture.ErrNotLocal
	}
	return true, nil
}

func sumAddrs(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	return s
}

// sum is the folded one's-complement sum of b plus initial; a correct
// checksum makes it 0xffff.
func sum(b []byte, initial uint32) uint16 {
	s := initial
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return uint16(s)
}
