package capture

import (
	"bytes"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// FuzzDecode checks that decode never panics and that whatever it accepts
// is consistent with the frame it came from: a knock candidate to the knock
// port (CLASSIC-2.3, 2.6), never a fragment or a packet with options
// (CLASSIC-4.3), never an IPv4-mapped address from an IPv6 header.
func FuzzDecode(f *testing.F) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	f.Add(udp4(testSrc4, testDst4, 40000, testPort, testKnock), 0, uint16(etherTypeIPv4), uint32(0))
	f.Add(udp6(testSrc6, testDst6, 40000, testPort, testKnock), 0, uint16(etherTypeIPv6), uint32(0))
	f.Add(ether(mac, mac, -1, etherTypeIPv4, tcp4(testSrc4, testDst4, 1, 22, tcpFlagSYN)), 14, uint16(0), uint32(0))
	f.Add(ether(mac, mac, 100, etherTypeIPv4, udp4(testSrc4, testDst4, 1, testPort, testKnock)), 18, uint16(0), uint32(0))
	f.Add(ipv4(testSrc4, testDst4, protoUDP, 0x2000, nil, testKnock), 0, uint16(0), uint32(0))
	f.Add(ipv4(testSrc4, testDst4, protoUDP, 0, []byte{1, 1, 1, 0}, testKnock), 0, uint16(0), uint32(0))
	f.Add(ipv6(testSrc6, testDst6, 0, []byte{17, 0, 1, 4, 0, 0, 0, 0}, testKnock), 0, uint16(0), uint32(0))
	f.Add(withUDPChecksum(udp4(testSrc4, testDst4, 1, testPort, testKnock), 0), 0, uint16(0), uint32(0))
	f.Add(withUDPChecksum(udp6(testSrc6, testDst6, 1, testPort, testKnock), 0), 0, uint16(0), uint32(tpStatusCsumNotReady))
	f.Add(withUDPChecksum(udp6(testSrc6, testDst6, 1, testPort, testKnock), 0x1234), 0, uint16(0), uint32(tpStatusCsumValid))
	f.Add(udp6(netipMapped(testSrc4), testDst6, 1, testPort, testKnock), 0, uint16(0), uint32(0))
	f.Add(udp4(testSrc4, testDst4, 1, testPort, append([]byte{protocol.ModernMagic}, make([]byte, protocol.MinModernLen)...)), 0, uint16(0), uint32(0))
	f.Fuzz(func(t *testing.T, frame []byte, hdr int, proto uint16, status uint32) {
		p, err := decode(frame, hdr, proto, status, testPort)
		if err != nil {
			if p.Src.IsValid() || p.Payload != nil {
				t.Fatalf("error %v with a non-zero packet %+v", err, p)
			}
			return
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4In6() || p.Dst.Is4In6() || p.Src.Is4() != p.Dst.Is4() {
			t.Fatalf("bad addresses %v %v", p.Src, p.Dst)
		}
		if p.DstPort != testPort || !mayBeKnock(p.Payload) {
			t.Fatalf("not a candidate: %+v", p)
		}
		if len(p.Payload) > len(frame)-hdr-ipv4MinHeaderLen-udpHeaderLen || !bytes.Contains(frame, p.Payload) {
			t.Fatalf("payload of %d bytes is not part of the %d-byte frame", len(p.Payload), len(frame))
		}
	})
}
