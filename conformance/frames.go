//go:build linux

package conformance

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
	"golang.org/x/sys/unix"
)

// Datagrams are built by hand, not with gopacket (which netsim uses for
// well-formed packets): the cases need wrong checksums, zero checksums over
// IPv6, odd fragments and options, which a serializer exists to prevent.

// csumMode says how a hand-built datagram's UDP checksum is set.
type csumMode uint8

const (
	csumGood csumMode = iota
	csumZero          // 0: "no checksum" for IPv4, invalid for IPv6
	csumBad           // the right value plus one
)

// rawIPv4 describes a hand-built IPv4/UDP datagram.
type rawIPv4 struct {
	Src, Dst         netip.Addr
	SrcPort, DstPort uint16
	Options          []byte // multiple of 4 bytes
	MF               bool
	FragOffset       uint16 // in 8-byte units
	ID               uint16 // 0: drawn from the clock
	BadIPCsum        bool
	UDPCsum          csumMode
	Payload          []byte
}

// udpSegment returns the UDP header and payload with the checksum set per mode;
// pseudo is the sum of the pseudo-header.
func udpSegment(srcPort, dstPort uint16, payload []byte, pseudo uint32, mode csumMode) []byte {
	u := make([]byte, 8+len(payload))
	binary.BigEndian.PutUint16(u[0:], srcPort)
	binary.BigEndian.PutUint16(u[2:], dstPort)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	var cs uint16
	switch mode {
	case csumGood, csumBad:
		cs = inetChecksum(u, pseudo)
		if cs == 0 {
			cs = 0xffff // RFC 768: a computed 0 is sent as all ones
		}
		if mode == csumBad {
			cs++
			if cs == 0 {
				cs = 1
			}
		}
	}
	binary.BigEndian.PutUint16(u[6:], cs)
	return u
}

func pseudoSum(src, dst []byte, proto uint8, length int) uint32 {
	var sum uint32
	for i := 0; i+1 < len(src); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(src[i:])) + uint32(binary.BigEndian.Uint16(dst[i:]))
	}
	return sum + uint32(proto) + uint32(length)
}

// datagram returns the UDP segment r carries.
func (r rawIPv4) datagram() []byte {
	s4, d4 := r.Src.As4(), r.Dst.As4()
	return udpSegment(r.SrcPort, r.DstPort, r.Payload, pseudoSum(s4[:], d4[:], unix.IPPROTO_UDP, 8+len(r.Payload)), r.UDPCsum)
}

// packet wraps data (a whole UDP segment, or a fragment of one) in r's
// IPv4 header.
func (r rawIPv4) packet(data []byte, mf bool, offset uint16) []byte {
	hl := 20 + len(r.Options)
	b := make([]byte, hl+len(data))
	b[0] = 0x40 | byte(hl/4)
	binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
	id := r.ID
	if id == 0 {
		id = uint16(time.Now().UnixNano())
	}
	binary.BigEndian.PutUint16(b[4:], id)
	ff := offset & 0x1fff
	if mf {
		ff |= 0x2000
	}
	binary.BigEndian.PutUint16(b[6:], ff)
	b[8] = 64
	b[9] = unix.IPPROTO_UDP
	s4, d4 := r.Src.As4(), r.Dst.As4()
	copy(b[12:], s4[:])
	copy(b[16:], d4[:])
	copy(b[20:], r.Options)
	cs := inetChecksum(b[:hl], 0)
	if r.BadIPCsum {
		cs ^= 0x5a5a
	}
	binary.BigEndian.PutUint16(b[10:], cs)
	copy(b[hl:], data)
	return b
}

func (r rawIPv4) bytes() []byte { return r.packet(r.datagram(), r.MF, r.FragOffset) }

// fragments splits r's datagram into two real fragments, the first
// holding firstLen bytes (a multiple of 8) of the UDP segment.
func (r rawIPv4) fragments(firstLen int) [][]byte {
	d := r.datagram()
	if r.ID == 0 {
		r.ID = uint16(time.Now().UnixNano()) | 1
	}
	return [][]byte{r.packet(d[:firstLen], true, 0), r.packet(d[firstLen:], false, uint16(firstLen/8))}
}

func inetChecksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// IPv6 extension headers a hand-built datagram may carry.
const (
	ext6DestOpts = 60
	ext6Fragment = 44
)

// rawIPv6 describes a hand-built IPv6/UDP datagram.
type rawIPv6 struct {
	Src, Dst         netip.Addr // 16-byte forms are used as they are (IPv4-mapped stays mapped)
	SrcPort, DstPort uint16
	UDPCsum          csumMode
	// DestOpts inserts an 8-byte destination options header (PadN).
	DestOpts bool
	Payload  []byte
}

func (r rawIPv6) datagram() []byte {
	s, d := r.Src.As16(), r.Dst.As16()
	return udpSegment(r.SrcPort, r.DstPort, r.Payload, pseudoSum(s[:], d[:], unix.IPPROTO_UDP, 8+len(r.Payload)), r.UDPCsum)
}

// packet builds the IPv6 header, then exts (already chained), then data;
// next is the protocol of the first header after the fixed one.
func (r rawIPv6) packet(next uint8, body []byte) []byte {
	b := make([]byte, 40+len(body))
	b[0] = 0x60
	binary.BigEndian.PutUint16(b[4:], uint16(len(body)))
	b[6] = next
	b[7] = 64
	s, d := r.Src.As16(), r.Dst.As16()
	copy(b[8:], s[:])
	copy(b[24:], d[:])
	copy(b[40:], body)
	return b
}

func (r rawIPv6) bytes() []byte {
	d := r.datagram()
	if !r.DestOpts {
		return r.packet(unix.IPPROTO_UDP, d)
	}
	// Next header UDP, length 0 (8 bytes), PadN of 4 bytes of zeros.
	opts := []byte{unix.IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0}
	return r.packet(ext6DestOpts, append(opts, d...))
}

// fragments returns r's datagram in IPv6 fragments: one atomic fragment
// (offset 0, no more fragments) when firstLen is 0, else two fragments,
// the first holding firstLen bytes (a multiple of 8) of the UDP segment.
func (r rawIPv6) fragments(firstLen int) [][]byte {
	d := r.datagram()
	id := uint32(time.Now().UnixNano()) | 1
	frag := func(data []byte, offset int, more bool) []byte {
		h := make([]byte, 8)
		h[0] = unix.IPPROTO_UDP
		fo := uint16(offset/8) << 3
		if more {
			fo |= 1
		}
		binary.BigEndian.PutUint16(h[2:], fo)
		binary.BigEndian.PutUint32(h[4:], id)
		return r.packet(ext6Fragment, append(h, data...))
	}
	if firstLen == 0 {
		return [][]byte{frag(d, 0, false)}
	}
	return [][]byte{frag(d[:firstLen], 0, true), frag(d[firstLen:], firstLen, false)}
}

// Link-layer destinations.
var (
	macBroadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	macAllHosts4 = net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x01} // 224.0.0.1
	macAllNodes6 = net.HardwareAddr{0x33, 0x33, 0x00, 0x00, 0x00, 0x01} // ff02::1
)

// l2Send sends one IP packet from host h's LAN interface to the link-layer
// address dst, bypassing h's routing and IP layer: any header, checksum or
// address goes out as built.
func l2Send(h Host, dst net.HardwareAddr, pkt []byte) error {
	proto := uint16(unix.ETH_P_IP)
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		proto = unix.ETH_P_IPV6
	}
	return h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(netsim.Htons(proto)))
		if err != nil {
			return fmt.Errorf("AF_PACKET socket: %w", err)
		}
		defer unix.Close(fd)
		sa := &unix.SockaddrLinklayer{Protocol: netsim.Htons(proto), Ifindex: h.ifIndex(), Halen: uint8(len(dst))}
		copy(sa.Addr[:], dst)
		if err := unix.Sendto(fd, pkt, 0, sa); err != nil {
			return fmt.Errorf("send on %s in %s: %w", IfName, h.NS, err)
		}
		return nil
	})
}
