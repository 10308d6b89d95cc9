package capture

import (
	"encoding/binary"
	"net/netip"
)

// EtherTypes as they appear in sockaddr_ll.sll_protocol (host order here).
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
)

// Header sizes and field offsets of the wire formats decode reads.
const (
	ipv4MinHeaderLen = 20
	ipv6HeaderLen    = 40
	udpHeaderLen     = 8
	tcpMinHeaderLen  = 20

	ipv4FlagMF       = 0x2000
	ipv4FragOffMask  = 0x1fff
	ipv6NextHopByHop = 0
	ipv6NextRouting  = 43
	ipv6NextFragment = 44
	ipv6NextESP      = 50
	ipv6NextAH       = 51
	ipv6NextDestOpts = 60
	ipv6NextMobility = 135
	ipv6NextHIP      = 139
	ipv6NextShim6    = 140
)

// decode parses one captured frame: a link-layer header of linkHdrLen bytes
// followed by an IPv4 or IPv6 packet. proto is the EtherType the kernel
// reported (0x0800 or 0x86DD); 0 means "unknown", and the IP version nibble
// decides. It returns any well-formed UDP or TCP packet (the caller decides
// whether it is a candidate) or one of the package's sentinel errors. The
// Payload aliases frame. It never allocates and never panics.
func decode(frame []byte, linkHdrLen int, proto uint16) (Packet, error) {
	if linkHdrLen < 0 || linkHdrLen >= len(frame) {
		return Packet{}, ErrTruncated
	}
	ip := frame[linkHdrLen:]
	version := ip[0] >> 4
	switch {
	case proto == etherTypeIPv4 && version == 4, proto == 0 && version == 4:
		return decodeIPv4(ip)
	case proto == etherTypeIPv6 && version == 6, proto == 0 && version == 6:
		return decodeIPv6(ip)
	}
	return Packet{}, ErrTruncated
}

func decodeIPv4(ip []byte) (Packet, error) {
	if len(ip) < ipv4MinHeaderLen {
		return Packet{}, ErrTruncated
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < ipv4MinHeaderLen || total < ihl || total > len(ip) {
		return Packet{}, ErrTruncated
	}
	ip = ip[:total] // drop link-layer padding
	// The original tested MF without byte swapping; here both are read in
	// network order from the 16-bit flags+offset field.
	if frag := binary.BigEndian.Uint16(ip[6:8]); frag&(ipv4FlagMF|ipv4FragOffMask) != 0 {
		return Packet{}, ErrFragment
	}
	if ihl != ipv4MinHeaderLen {
		return Packet{}, ErrIPOptions
	}
	p := Packet{
		Src: netip.AddrFrom4([4]byte(ip[12:16])),
		Dst: netip.AddrFrom4([4]byte(ip[16:20])),
	}
	return decodeTransport(p, ip[9], ip[ihl:])
}

func decodeIPv6(ip []byte) (Packet, error) {
	if len(ip) < ipv6HeaderLen {
		return Packet{}, ErrTruncated
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ipv6HeaderLen+plen > len(ip) {
		return Packet{}, ErrTruncated // also jumbograms (plen 0 with a hop-by-hop option)
	}
	ip = ip[:ipv6HeaderLen+plen]
	next := ip[6]
	switch next {
	case ipv6NextFragment:
		return Packet{}, ErrFragment
	case ipv6NextHopByHop, ipv6NextRouting, ipv6NextDestOpts, ipv6NextESP,
		ipv6NextAH, ipv6NextMobility, ipv6NextHIP, ipv6NextShim6:
		return Packet{}, ErrIPOptions
	}
	p := Packet{
		Src: netip.AddrFrom16([16]byte(ip[8:24])).Unmap(),
		Dst: netip.AddrFrom16([16]byte(ip[24:40])).Unmap(),
	}
	return decodeTransport(p, next, ip[ipv6HeaderLen:])
}

// decodeTransport fills the UDP or TCP fields of p from the IP payload l4.
func decodeTransport(p Packet, proto uint8, l4 []byte) (Packet, error) {
	switch proto {
	case ProtoUDP:
		if len(l4) < udpHeaderLen {
			return Packet{}, ErrTruncated
		}
		ulen := int(binary.BigEndian.Uint16(l4[4:6]))
		if ulen < udpHeaderLen || ulen > len(l4) {
			return Packet{}, ErrTruncated
		}
		p.Payload = l4[udpHeaderLen:ulen:ulen]
	case ProtoTCP:
		if len(l4) < tcpMinHeaderLen {
			return Packet{}, ErrTruncated
		}
		if off := int(l4[12]>>4) * 4; off < tcpMinHeaderLen || off > len(l4) {
			return Packet{}, ErrTruncated
		}
		p.TCPFlags = l4[13]
	default:
		return Packet{}, ErrNotCandidate
	}
	p.Proto = proto
	p.SrcPort = binary.BigEndian.Uint16(l4[0:2])
	p.DstPort = binary.BigEndian.Uint16(l4[2:4])
	return p, nil
}
