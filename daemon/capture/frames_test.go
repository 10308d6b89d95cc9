package capture

import (
	"encoding/binary"
	"net/netip"
)

// Builders of test packets. They make well-formed headers (checksums
// included, UDP over IPv6 too) unless a test breaks them on purpose.
// Hand-written rather than gopacket: the decoder under test must not be
// checked against frames made by the same kind of library it replaces, and
// the broken variants (odd options, fragments, bad sums) are one byte away.

func checksum(sum uint32, b []byte) uint32 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	return sum
}

func fold(sum uint32) uint16 {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// l4 builds a UDP datagram or TCP segment with its checksum over the
// pseudo header of src and dst.
func l4(src, dst netip.Addr, proto uint8, sport, dport uint16, tcpFlags uint8, payload []byte) []byte {
	var b []byte
	csumOff := 0
	switch proto {
	case protoUDP:
		b = make([]byte, udpHeaderLen+len(payload))
		binary.BigEndian.PutUint16(b[4:], uint16(len(b)))
		copy(b[udpHeaderLen:], payload)
		csumOff = 6
	case protoTCP:
		b = make([]byte, 20)
		binary.BigEndian.PutUint32(b[4:], 0x01020304) // seq
		b[12] = 5 << 4
		b[13] = tcpFlags
		binary.BigEndian.PutUint16(b[14:], 64240)
		csumOff = 16
	default:
		b = append([]byte{8, 0, 0, 0, 0, 0, 0, 0}, payload...) // ICMP-ish
		return b
	}
	binary.BigEndian.PutUint16(b[0:], sport)
	binary.BigEndian.PutUint16(b[2:], dport)
	s, d := src.AsSlice(), dst.AsSlice()
	sum := checksum(checksum(0, s), d)
	sum += uint32(proto) + uint32(len(b))
	c := fold(checksum(sum, b))
	if c == 0 && proto == protoUDP {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[csumOff:], c)
	return b
}

// ipv4 builds an IPv4 packet; options are padded to 4 bytes by the caller.
func ipv4(src, dst netip.Addr, proto uint8, frag uint16, options, payload []byte) []byte {
	hl := ipv4MinHeaderLen + len(options)
	b := make([]byte, hl+len(payload))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	binary.BigEndian.PutUint16(b[4:], 0x1234)
	binary.BigEndian.PutUint16(b[6:], frag)
	b[8] = 64
	b[9] = proto
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	copy(b[20:], options)
	binary.BigEndian.PutUint16(b[10:], fold(checksum(0, b[:hl])))
	copy(b[hl:], payload)
	return b
}

// ipv6 builds an IPv6 packet whose first header is next; ext (if any) is
// the raw extension headers between the fixed header and payload.
func ipv6(src, dst netip.Addr, next uint8, ext, payload []byte) []byte {
	b := make([]byte, ipv6HeaderLen+len(ext)+len(payload))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(ext)+len(payload)))
	b[6] = next
	b[7] = 64
	s, d := src.As16(), dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], ext)
	copy(b[40+len(ext):], payload)
	return b
}

// udp4 and udp6 build complete UDP packets.
func udp4(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	return ipv4(src, dst, protoUDP, 0, nil, l4(src, dst, protoUDP, sport, dport, 0, payload))
}

func udp6(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	return ipv6(src, dst, protoUDP, nil, l4(src, dst, protoUDP, sport, dport, 0, payload))
}

func tcp4(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	return ipv4(src, dst, protoTCP, 0, nil, l4(src, dst, protoTCP, sport, dport, flags, nil))
}

func tcp6(src, dst netip.Addr, sport, dport uint16, flags uint8) []byte {
	return ipv6(src, dst, protoTCP, nil, l4(src, dst, protoTCP, sport, dport, flags, nil))
}

// ether prepends an Ethernet header, with an 802.1Q tag when vlan >= 0,
// and pads to the 60-byte minimum like a NIC would.
func ether(dst, src [6]byte, vlan int, etherType uint16, payload []byte) []byte {
	b := append([]byte{}, dst[:]...)
	b = append(b, src[:]...)
	if vlan >= 0 {
		b = binary.BigEndian.AppendUint16(b, 0x8100)
		b = binary.BigEndian.AppendUint16(b, uint16(vlan))
	}
	b = binary.BigEndian.AppendUint16(b, etherType)
	b = append(b, payload...)
	for len(b) < 60 {
		b = append(b, 0)
	}
	return b
}

var (
	testSrc4  = netip.MustParseAddr("198.18.0.1")
	testDst4  = netip.MustParseAddr("198.18.0.2")
	testSrc6  = netip.MustParseAddr("2001:db8::1")
	testDst6  = netip.MustParseAddr("2001:db8::2")
	testKnock = []byte("2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2")
)

// TCP flags for test segments.
const (
	tcpFlagSYN = 0x02
	tcpFlagACK = 0x10
)

// withUDPChecksum returns a copy of an IPv4 or IPv6 UDP packet (no options
// or extension headers) with its UDP checksum field set to sum.
func withUDPChecksum(pkt []byte, sum uint16) []byte {
	b := append([]byte{}, pkt...)
	off := ipv4MinHeaderLen
	if b[0]>>4 == 6 {
		off = ipv6HeaderLen
	}
	binary.BigEndian.PutUint16(b[off+6:], sum)
	return b
}

// netipMapped returns the IPv4-mapped IPv6 form of a.
func netipMapped(a netip.Addr) netip.Addr { return netip.AddrFrom16(a.As16()) }
