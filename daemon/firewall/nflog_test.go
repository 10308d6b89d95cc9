package firewall

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// nflogMessage builds an NFULNL_MSG_PACKET body as the kernel sends it.
func nflogMessage(prefix string, payload []byte) []byte {
	b := []byte{2, 0, 0x03, 0xe9} // nfgenmsg: AF_INET, v0, group 1001
	attr := func(typ uint16, v []byte) {
		var h [4]byte
		binary.NativeEndian.PutUint16(h[0:], uint16(4+len(v)))
		binary.NativeEndian.PutUint16(h[2:], typ)
		b = append(b, h[:]...)
		b = append(b, v...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
	}
	attr(1, []byte{0x08, 0x00, 1, 0}) // NFULA_PACKET_HDR
	if prefix != "" {
		attr(nfulaPrefix, append([]byte(prefix), 0))
	}
	if payload != nil {
		attr(nfulaPayload, payload)
	}
	return b
}

func synPacket(t testing.TB, src, dst netip.Addr, sport, dport uint16, ext bool) []byte {
	t.Helper()
	tcp := &layers.TCP{SrcPort: layers.TCPPort(sport), DstPort: layers.TCPPort(dport), SYN: true, Window: 1024}
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	var err error
	if src.Is4() {
		ip := &layers.IPv4{Version: 4, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, tcp)
	} else {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: layers.IPProtocolTCP, SrcIP: src.AsSlice(), DstIP: dst.AsSlice()}
		_ = tcp.SetNetworkLayerForChecksum(ip)
		if ext {
			ip.NextHeader = layers.IPProtocolIPv6Destination
			dopt := &layers.IPv6Destination{}
			dopt.NextHeader = layers.IPProtocolTCP
			dopt.Options = []*layers.IPv6DestinationOption{{OptionType: 1, OptionLength: 4, OptionData: []byte{0, 0, 0, 0}}}
			err = gopacket.SerializeLayers(buf, opts, ip, dopt, tcp)
		} else {
			err = gopacket.SerializeLayers(buf, opts, ip, tcp)
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestParseNFLogPacket(t *testing.T) {
	v4s, v4d := netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1")
	v6s, v6d := netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1")
	for _, tc := range []struct {
		name     string
		src, dst netip.Addr
		ext      bool
	}{{"ipv4", v4s, v4d, false}, {"ipv6", v6s, v6d, false}, {"ipv6-destopts", v6s, v6d, true}} {
		t.Run(tc.name, func(t *testing.T) {
			msg := nflogMessage(nflogPrefix, synPacket(t, tc.src, tc.dst, 40001, 22, tc.ext))
			c, err := parseNFLogPacket(msg)
			if err != nil {
				t.Fatal(err)
			}
			if c.Src != tc.src || c.Dst != tc.dst || c.SrcPort != 40001 || c.Port != 22 {
				t.Fatalf("got %+v", c)
			}
		})
	}
	syn := synPacket(t, v4s, v4d, 40001, 22, false)
	for name, msg := range map[string][]byte{
		"no prefix":    nflogMessage("", syn),
		"other prefix": nflogMessage("somebody else", syn),
		"no payload":   nflogMessage(nflogPrefix, nil),
		"udp":          nflogMessage(nflogPrefix, append(append([]byte{}, syn[:9]...), append([]byte{17}, syn[10:]...)...)),
		"truncated":    nflogMessage(nflogPrefix, syn[:21]),
		"short":        {2, 0},
		"bad attr len": append(nflogMessage(nflogPrefix, syn), 0xff, 0xff, 9, 0),
	} {
		if _, err := parseNFLogPacket(msg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func FuzzParseNFLogPacket(f *testing.F) {
	f.Add(nflogMessage(nflogPrefix, synPacket(f, netip.MustParseAddr("198.18.0.2"), netip.MustParseAddr("198.18.0.1"), 1, 2, false)))
	f.Add(nflogMessage(nflogPrefix, synPacket(f, netip.MustParseAddr("2001:db8::2"), netip.MustParseAddr("2001:db8::1"), 1, 2, true)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseNFLogPacket(b)
		if err == nil && (!c.Src.IsValid() || !c.Dst.IsValid() || c.Src.BitLen() != c.Dst.BitLen()) {
			t.Fatalf("claim with bad addresses: %+v", c)
		}
	})
}
