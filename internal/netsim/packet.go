//go:build linux

package netsim

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// UDPPacket returns an IP packet (IPv4 with DF and TTL 64, or IPv6 with hop
// limit 64, as src and dst are) holding a UDP datagram src → dst with
// payload, lengths and checksums filled in by gopacket. The addresses need
// not belong to anyone: the packet is for injection or spoofing.
func UDPPacket(src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	s, d := src.Addr().Unmap(), dst.Addr().Unmap()
	if !s.IsValid() || !d.IsValid() || s.Is4() != d.Is4() {
		return nil, fmt.Errorf("netsim: UDP packet %v -> %v: invalid or mixed address families", src, dst)
	}
	udp := &layers.UDP{SrcPort: layers.UDPPort(src.Port()), DstPort: layers.UDPPort(dst.Port())}
	var ip gopacket.SerializableLayer
	if s.Is4() {
		var id [2]byte
		if _, err := rand.Read(id[:]); err != nil {
			return nil, err
		}
		ip4 := &layers.IPv4{Version: 4, TTL: 64, Flags: layers.IPv4DontFragment, Id: binary.BigEndian.Uint16(id[:]),
			Protocol: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := udp.SetNetworkLayerForChecksum(ip4); err != nil {
			return nil, err
		}
		ip = ip4
	} else {
		ip6 := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolUDP, SrcIP: s.AsSlice(), DstIP: d.AsSlice()}
		if err := udp.SetNetworkLayerForChecksum(ip6); err != nil {
			return nil, err
		}
		ip = ip6
	}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ip, udp, gopacket.Payload(payload)); err != nil {
		return nil, fmt.Errorf("netsim: UDP packet %v -> %v: %w", src, dst, err)
	}
	return buf.Bytes(), nil
}

// TaggedFrame returns an Ethernet frame dst ← src carrying payload with
// the given EtherType behind an 802.1Q tag with VLAN id vid (priority 0;
// only the low 12 bits of vid are used), padded with zeros to Ethernet's
// minimum of 60 bytes as a sender's NIC would. Addresses shorter than 6
// bytes are zero padded.
func TaggedFrame(dst, src net.HardwareAddr, vid uint16, etherType uint16, payload []byte) []byte {
	pad := func(a net.HardwareAddr) net.HardwareAddr {
		b := make(net.HardwareAddr, 6)
		copy(b, a)
		return b
	}
	eth := &layers.Ethernet{DstMAC: pad(dst), SrcMAC: pad(src), EthernetType: layers.EthernetTypeDot1Q}
	tag := &layers.Dot1Q{VLANIdentifier: vid & 0x0fff, Type: layers.EthernetType(etherType)}
	buf := gopacket.NewSerializeBuffer()
	// Neither layer can fail to serialize what it was given.
	_ = gopacket.SerializeLayers(buf, gopacket.SerializeOptions{}, eth, tag, gopacket.Payload(payload))
	return buf.Bytes()
}
