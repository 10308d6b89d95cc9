package capture

import (
	"encoding/binary"
	"math/bits"
	"net/netip"

	"github.com/doorman-project/doorman/protocol"
)

// EtherTypes as they appear in sockaddr_ll.sll_protocol (host order here).
const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86DD
)

// Header sizes, field offsets and numbers of the wire formats decode reads.
const (
	ipv4MinHeaderLen = 20
	ipv6HeaderLen    = 40
	udpHeaderLen     = 8

	protoUDP = 17
	protoTCP = 6

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

// Checksum states of a captured frame, from tpacket3_hdr.tp_status or
// tpacket_auxdata.tp_status (TP_STATUS_*, linux/if_packet.h).
const (
	// tpStatusCsumNotReady: the UDP checksum has not been computed yet
	// (a locally generated packet, or one whose checksum is offloaded,
	// as on veth); the kernel accepts it as it is.
	tpStatusCsumNotReady = 0x8
	// tpStatusCsumValid: the device or the kernel has already verified
	// the UDP checksum.
	tpStatusCsumValid = 0x80
	// tpStatusVLANValid: tp_vlan_tci holds an 802.1Q tag the kernel took
	// off the frame.
	tpStatusVLANValid = 0x10
)

// maxPayload is the longest payload mayBeKnock accepts.
const maxPayload = max(protocol.MaxClassicLen+1, protocol.MaxModernLen)

// mayBeKnock reports whether a UDP payload may be a knock, judged from its
// length and first byte alone: a classic knock starts with a digit and is
// MinClassicLen to MaxClassicLen+1 bytes long (CLASSIC-2.3, the +1 is the
// newline of CLASSIC-2.4); a modern one starts with protocol.ModernMagic
// and has a modern length; any other first byte is not a knock
// (CLASSIC-2.6). The kernel filter applies the same rule (buildFilter).
func mayBeKnock(payload []byte) bool {
	n := len(payload)
	if n == 0 {
		return false
	}
	switch b := payload[0]; {
	case b >= '0' && b <= '9':
		return n >= protocol.MinClassicLen && n <= protocol.MaxClassicLen+1
	case b == protocol.ModernMagic:
		return n >= protocol.MinModernLen && n <= protocol.MaxModernLen
	}
	return false
}

// decode parses one captured frame: a link-layer header of linkHdrLen bytes
// followed by an IPv4 or IPv6 packet. proto is the EtherType the kernel
// reported (0x0800 or 0x86DD); 0 means "unknown", and the IP version nibble
// decides. status holds the frame's TP_STATUS_* bits, of which only the
// checksum ones matter here. It returns a knock candidate (a UDP datagram to
// port whose payload mayBeKnock) or one of the package's sentinel errors.
// The destination address is not checked here. Payload aliases frame. It
// never allocates and never panics.
func decode(frame []byte, linkHdrLen int, proto uint16, status uint32, port uint16) (Packet, error) {
	if linkHdrLen < 0 || linkHdrLen >= len(frame) {
		return Packet{}, ErrTruncated
	}
	ip := frame[linkHdrLen:]
	version := ip[0] >> 4
	switch {
	case proto == etherTypeIPv4 && version == 4, proto == 0 && version == 4:
		return decodeIPv4(ip, status, port)
	case proto == etherTypeIPv6 && version == 6, proto == 0 && version == 6:
		return decodeIPv6(ip, status, port)
	}
	return Packet{}, ErrTruncated
}

func decodeIPv4(ip []byte, status uint32, port uint16) (Packet, error) {
	if len(ip) < ipv4MinHeaderLen {
		return Packet{}, ErrTruncated
	}
	ihl := int(ip[0]&0x0f) * 4
	total := int(binary.BigEndian.Uint16(ip[2:4]))
	if ihl < ipv4MinHeaderLen || total < ihl || total > len(ip) {
		return Packet{}, ErrTruncated
	}
	ip = ip[:total] // drop link-layer padding
	// The kernel checks the header checksum of every IPv4 packet, whatever
	// the device says about offloads (ip_rcv_core): so does this.
	if csumFold(csumAdd(0, ip[:ihl])) != 0xffff {
		return Packet{}, ErrChecksum
	}
	// The original tested MF without byte swapping; here both are read in
	// network order from the 16-bit flags+offset field.
	if frag := binary.BigEndian.Uint16(ip[6:8]); frag&(ipv4FlagMF|ipv4FragOffMask) != 0 {
		return Packet{}, ErrFragment
	}
	if ihl != ipv4MinHeaderLen {
		return Packet{}, ErrIPOptions
	}
	if ip[9] != protoUDP {
		return Packet{}, ErrNotCandidate
	}
	udp, err := decodeUDP(ip[ihl:], port)
	if err != nil {
		return Packet{}, err
	}
	src, dst := [4]byte(ip[12:16]), [4]byte(ip[16:20])
	if martian4(src) {
		return Packet{}, ErrMartian
	}
	if !skipUDPChecksum(status) && binary.BigEndian.Uint16(udp[6:8]) != 0 { // 0: sent without a checksum
		sum := csumAddUint(csumAdd(csumAdd(0, src[:]), dst[:]), protoUDP+uint64(len(udp)))
		if csumFold(csumAdd(sum, udp)) != 0xffff {
			return Packet{}, ErrChecksum
		}
	}
	return Packet{
		Src:     netip.AddrFrom4(src),
		Dst:     netip.AddrFrom4(dst),
		SrcPort: binary.BigEndian.Uint16(udp[0:2]),
		DstPort: port,
		Payload: udp[udpHeaderLen:len(udp):len(udp)],
	}, nil
}

func decodeIPv6(ip []byte, status uint32, port uint16) (Packet, error) {
	if len(ip) < ipv6HeaderLen {
		return Packet{}, ErrTruncated
	}
	plen := int(binary.BigEndian.Uint16(ip[4:6]))
	if ipv6HeaderLen+plen > len(ip) {
		return Packet{}, ErrTruncated // also jumbograms (plen 0 with a hop-by-hop option)
	}
	ip = ip[:ipv6HeaderLen+plen]
	switch ip[6] {
	case protoUDP:
	case ipv6NextFragment:
		return Packet{}, ErrFragment
	case ipv6NextHopByHop, ipv6NextRouting, ipv6NextDestOpts, ipv6NextESP,
		ipv6NextAH, ipv6NextMobility, ipv6NextHIP, ipv6NextShim6:
		return Packet{}, ErrIPOptions
	default:
		return Packet{}, ErrNotCandidate
	}
	udp, err := decodeUDP(ip[ipv6HeaderLen:], port)
	if err != nil {
		return Packet{}, err
	}
	src, dst := [16]byte(ip[8:24]), [16]byte(ip[24:40])
	// No Unmap: an IPv6 packet from ::ffff:a.b.c.d is not an IPv4 packet
	// from a.b.c.d, and must not open that address's doors.
	if embedsIPv4(src) || embedsIPv4(dst) || src[0] == 0xff || src == [16]byte{} {
		return Packet{}, ErrMartian
	}
	// The IPv6 UDP checksum is mandatory (RFC 8200 8.1): 0 is invalid.
	if !skipUDPChecksum(status) {
		sum := csumAddUint(csumAdd(csumAdd(0, src[:]), dst[:]), protoUDP+uint64(len(udp)))
		if binary.BigEndian.Uint16(udp[6:8]) == 0 || csumFold(csumAdd(sum, udp)) != 0xffff {
			return Packet{}, ErrChecksum
		}
	}
	return Packet{
		Src:     netip.AddrFrom16(src),
		Dst:     netip.AddrFrom16(dst),
		SrcPort: binary.BigEndian.Uint16(udp[0:2]),
		DstPort: port,
		Payload: udp[udpHeaderLen:len(udp):len(udp)],
	}, nil
}

// decodeUDP checks the UDP header at the start of l4 and returns the
// datagram (header and payload, without trailing bytes) when it is a knock
// candidate.
func decodeUDP(l4 []byte, port uint16) ([]byte, error) {
	if len(l4) < udpHeaderLen {
		return nil, ErrTruncated
	}
	ulen := int(binary.BigEndian.Uint16(l4[4:6]))
	if ulen < udpHeaderLen || ulen > len(l4) {
		return nil, ErrTruncated
	}
	udp := l4[:ulen]
	if binary.BigEndian.Uint16(udp[2:4]) != port || !mayBeKnock(udp[udpHeaderLen:]) {
		return nil, ErrNotCandidate
	}
	return udp, nil
}

// skipUDPChecksum reports whether the kernel says the UDP checksum is
// already verified or not computed yet; either way the kernel accepts the
// datagram without looking at the field.
func skipUDPChecksum(status uint32) bool {
	return status&(tpStatusCsumNotReady|tpStatusCsumValid) != 0
}

// martian4 reports an IPv4 source the kernel refuses as martian whatever
// the device: "this network" 0.0.0.0/8, multicast and limited broadcast.
// Loopback sources depend on the device and are checked by the Conn.
func martian4(src [4]byte) bool {
	return src[0] == 0 || src[0]&0xf0 == 0xe0 || src == [4]byte{255, 255, 255, 255}
}

// embedsIPv4 reports an IPv4-mapped (::ffff:0:0/96) or IPv4-compatible
// (::/96 but :: and ::1) address, which no IPv6 packet may carry: Linux
// drops a mapped source, and both would let an IPv6 packet pass for IPv4.
func embedsIPv4(a [16]byte) bool {
	if [10]byte(a[:10]) != [10]byte{} {
		return false
	}
	switch {
	case a[10] == 0xff && a[11] == 0xff:
		return true
	case a[10] == 0 && a[11] == 0:
		return binary.BigEndian.Uint32(a[12:]) > 1
	}
	return false
}

// csumAdd adds b to an Internet checksum accumulator, as big-endian 64-bit
// words with end-around carry (zero-padded at the end); b must start at an
// even offset of the checksummed data.
func csumAdd(sum uint64, b []byte) uint64 {
	var carry uint64
	for len(b) >= 8 {
		sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(b), carry)
		b = b[8:]
	}
	var tail [8]byte
	copy(tail[:], b)
	sum, carry = bits.Add64(sum, binary.BigEndian.Uint64(tail[:]), carry)
	return sum + carry // cannot carry again: sum is at most 2^64-2 here
}

// csumAddUint adds v to an Internet checksum accumulator.
func csumAddUint(sum, v uint64) uint64 {
	sum, carry := bits.Add64(sum, v, 0)
	return sum + carry
}

// csumFold folds an accumulator to the 16-bit one's complement sum; data
// with a correct checksum field folds to 0xffff.
func csumFold(sum uint64) uint16 {
	for sum>>16 != 0 { // 2^16 = 1 modulo 0xffff: fold the carries back in
		sum = sum>>16 + sum&0xffff
	}
	return uint16(sum)
}
