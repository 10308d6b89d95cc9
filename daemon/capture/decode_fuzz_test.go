package capture

import (
	"bytes"
	"testing"
)

// FuzzDecode checks that decode never panics and that whatever it accepts
// is consistent with the frame it came from.
func FuzzDecode(f *testing.F) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	f.Add(udp4(testSrc4, testDst4, 40000, 1001, testKnock), 0, uint16(etherTypeIPv4))
	f.Add(udp6(testSrc6, testDst6, 40000, 1001, testKnock), 0, uint16(etherTypeIPv6))
	f.Add(ether(mac, mac, -1, etherTypeIPv4, tcp4(testSrc4, testDst4, 1, 22, TCPFlagSYN)), 14, uint16(0))
	f.Add(ether(mac, mac, 100, etherTypeIPv4, udp4(testSrc4, testDst4, 1, 1001, testKnock)), 18, uint16(0))
	f.Add(ipv4(testSrc4, testDst4, ProtoUDP, 0x2000, nil, testKnock), 0, uint16(0))
	f.Add(ipv4(testSrc4, testDst4, ProtoUDP, 0, []byte{1, 1, 1, 0}, testKnock), 0, uint16(0))
	f.Add(ipv6(testSrc6, testDst6, 0, []byte{17, 0, 1, 4, 0, 0, 0, 0}, testKnock), 0, uint16(0))
	f.Fuzz(func(t *testing.T, frame []byte, hdr int, proto uint16) {
		p, err := decode(frame, hdr, proto)
		if err != nil {
			if p.Src.IsValid() || p.Payload != nil || p.Proto != 0 {
				t.Fatalf("error %v with a non-zero packet %+v", err, p)
			}
			return
		}
		if !p.Src.IsValid() || !p.Dst.IsValid() || p.Src.Is4In6() || p.Dst.Is4In6() {
			t.Fatalf("bad addresses %v %v", p.Src, p.Dst)
		}
		switch p.Proto {
		case ProtoUDP:
			if len(p.Payload) > len(frame)-hdr-ipv4MinHeaderLen-udpHeaderLen {
				t.Fatalf("payload of %d bytes from a %d-byte frame", len(p.Payload), len(frame))
			}
			if len(p.Payload) > 0 && !bytes.Contains(frame, p.Payload) {
				t.Fatal("payload is not part of the frame")
			}
		case ProtoTCP:
			if p.Payload != nil {
				t.Fatal("TCP with payload")
			}
		default:
			t.Fatalf("proto %d accepted", p.Proto)
		}
	})
}
