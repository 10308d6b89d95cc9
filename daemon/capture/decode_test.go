package capture

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

const testPort = 1001

func TestDecode(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	v4 := udp4(testSrc4, testDst4, 40000, testPort, testKnock)
	v6 := udp6(testSrc6, testDst6, 40001, testPort, testKnock)
	hbh := []byte{protoUDP, 0, 1, 4, 0, 0, 0, 0} // next=UDP, len 0 (8 bytes), PadN
	frag6 := []byte{protoUDP, 0, 0, 1, 0, 0, 0, 1}
	ipOpt := []byte{1, 1, 1, 0} // NOP NOP NOP EOL
	shortTotal := append([]byte{}, v4...)
	shortTotal[3] = 10 // total length below the header length
	badULen := append([]byte{}, v4...)
	badULen[20+5] = 4 // UDP length 4 < 8 (the checksum fails too, but the length is looked at first)
	badIPSum := append([]byte{}, v4...)
	badIPSum[10] ^= 0x40
	badTTL := append([]byte{}, v4...)
	badTTL[8]-- // a header byte changed without fixing the checksum
	badPayload := append([]byte{}, v4...)
	badPayload[len(badPayload)-1] ^= 1
	badPayload6 := append([]byte{}, v6...)
	badPayload6[len(badPayload6)-1] ^= 1
	mapped := netipMapped(testSrc4)
	compat := netip.AddrFrom16([16]byte{12: 198, 13: 18, 14: 0, 15: 1})
	modern := append([]byte{protocol.ModernMagic}, bytes.Repeat([]byte{'m'}, protocol.MinModernLen-1)...)

	tests := []struct {
		name    string
		frame   []byte
		hdr     int
		proto   uint16
		status  uint32
		want    error
		wantSrc string
	}{
		{"ipv4 udp cooked", v4, 0, etherTypeIPv4, 0, nil, "198.18.0.1"},
		{"ipv4 udp nibble", v4, 0, 0, 0, nil, "198.18.0.1"},
		{"ipv4 udp ethernet padded", ether(mac, mac, -1, etherTypeIPv4, udp4(testSrc4, testDst4, 40000, testPort, testKnock)), 14, 0, 0, nil, "198.18.0.1"},
		{"ipv4 DF is not a fragment", ipv4(testSrc4, testDst4, protoUDP, 0x4000, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), 0, 0, 0, nil, "198.18.0.1"},
		{"modern payload", udp4(testSrc4, testDst4, 1, testPort, modern), 0, 0, 0, nil, "198.18.0.1"},
		// CLASSIC-4.3
		{"ipv4 MF", ipv4(testSrc4, testDst4, protoUDP, 0x2000, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), 0, 0, 0, ErrFragment, ""},
		// 0x0020 is MF read without byte swapping: an offset of 32, a fragment too.
		{"ipv4 offset", ipv4(testSrc4, testDst4, protoUDP, 0x0020, nil, testKnock), 0, 0, 0, ErrFragment, ""},
		{"ipv4 options", ipv4(testSrc4, testDst4, protoUDP, 0, ipOpt, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), 0, 0, 0, ErrIPOptions, ""},
		{"ipv6 hop-by-hop", ipv6(testSrc6, testDst6, 0, hbh, l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), 0, 0, 0, ErrIPOptions, ""},
		{"ipv6 fragment", ipv6(testSrc6, testDst6, ipv6NextFragment, frag6, l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), 0, 0, 0, ErrFragment, ""},
		// Not knock candidates (CLASSIC-2.3, 2.6, 4.4 for the port).
		{"ipv4 tcp syn", tcp4(testSrc4, testDst4, 40000, 22, tcpFlagSYN), 0, etherTypeIPv4, 0, ErrNotCandidate, ""},
		{"ipv4 icmp", ipv4(testSrc4, testDst4, 1, 0, nil, l4(testSrc4, testDst4, 1, 0, 0, 0, nil)), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 other port", udp4(testSrc4, testDst4, 1, testPort+1, testKnock), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 not a knock by first byte", udp4(testSrc4, testDst4, 1, testPort, append([]byte("x"), testKnock[1:]...)), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 too short", udp4(testSrc4, testDst4, 1, testPort, testKnock[:protocol.MinClassicLen-1]), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 too long", udp4(testSrc4, testDst4, 1, testPort, bytes.Repeat([]byte("1"), protocol.MaxClassicLen+2)), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 empty payload", udp4(testSrc4, testDst4, 1, testPort, nil), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv6 tcp syn", tcp6(testSrc6, testDst6, 40000, 22, tcpFlagSYN), 0, etherTypeIPv6, 0, ErrNotCandidate, ""},
		{"ipv6 icmp", ipv6(testSrc6, testDst6, 58, nil, []byte{128, 0, 0, 0}), 0, 0, 0, ErrNotCandidate, ""},
		// Malformed.
		{"ipv4 total below header", shortTotal, 0, 0, 0, ErrTruncated, ""},
		{"ipv4 total beyond frame", v4[:len(v4)-1], 0, 0, 0, ErrTruncated, ""},
		{"ipv4 bad udp length", badULen, 0, 0, 0, ErrTruncated, ""},
		{"ipv4 short", v4[:19], 0, 0, 0, ErrTruncated, ""},
		{"ipv4 tcp short", ipv4(testSrc4, testDst4, protoTCP, 0, nil, make([]byte, 12)), 0, 0, 0, ErrNotCandidate, ""},
		{"ipv4 ihl 4", append([]byte{0x44}, v4[1:]...), 0, 0, 0, ErrTruncated, ""},
		{"ipv6 udp", v6, 0, etherTypeIPv6, 0, nil, "2001:db8::1"},
		{"ipv6 udp ethernet", ether(mac, mac, -1, etherTypeIPv6, v6), 14, 0, 0, nil, "2001:db8::1"},
		{"ipv6 short", v6[:39], 0, 0, 0, ErrTruncated, ""},
		{"ipv6 payload beyond frame", v6[:len(v6)-1], 0, 0, 0, ErrTruncated, ""},
		{"proto says ipv6, packet is ipv4", v4, 0, etherTypeIPv6, 0, ErrTruncated, ""},
		{"not ip", v4, 0, 0x0806, 0, ErrTruncated, ""},
		{"wrong link header", ether(mac, mac, -1, etherTypeIPv4, v4), 18, 0, 0, ErrTruncated, ""},
		{"link header beyond frame", v4, len(v4), 0, 0, ErrTruncated, ""},
		{"negative link header", v4, -1, 0, 0, ErrTruncated, ""},
		{"empty", nil, 0, 0, 0, ErrTruncated, ""},
		// Checksums: what the kernel would drop is refused, unless the
		// kernel says the UDP checksum is verified or not computed yet.
		{"ipv4 bad header checksum", badIPSum, 0, 0, 0, ErrChecksum, ""},
		{"ipv4 header changed", badTTL, 0, 0, 0, ErrChecksum, ""},
		{"ipv4 bad header checksum, udp valid", badIPSum, 0, 0, tpStatusCsumValid, ErrChecksum, ""},
		{"ipv4 bad udp checksum", badPayload, 0, 0, 0, ErrChecksum, ""},
		{"ipv4 bad udp checksum, verified", badPayload, 0, 0, tpStatusCsumValid, nil, "198.18.0.1"},
		{"ipv4 bad udp checksum, not ready", badPayload, 0, 0, tpStatusCsumNotReady, nil, "198.18.0.1"},
		{"ipv4 udp checksum 0 means none", withUDPChecksum(v4, 0), 0, 0, 0, nil, "198.18.0.1"},
		{"ipv4 udp checksum 0xffff", withUDPChecksum(v4, 0xffff), 0, 0, 0, ErrChecksum, ""},
		{"ipv6 bad udp checksum", badPayload6, 0, 0, 0, ErrChecksum, ""},
		{"ipv6 bad udp checksum, verified", badPayload6, 0, 0, tpStatusCsumValid, nil, "2001:db8::1"},
		{"ipv6 udp checksum 0 is invalid", withUDPChecksum(v6, 0), 0, 0, 0, ErrChecksum, ""},
		{"ipv6 udp checksum 0, not ready", withUDPChecksum(v6, 0), 0, 0, tpStatusCsumNotReady, nil, "2001:db8::1"},
		// Addresses no real packet carries.
		{"ipv6 from v4-mapped", udp6(mapped, testDst6, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv6 to v4-mapped", udp6(testSrc6, netipMapped(testDst4), 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv6 from v4-compatible", udp6(compat, testDst6, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv6 from multicast", udp6(netip.MustParseAddr("ff02::1"), testDst6, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv6 from unspecified", udp6(netip.IPv6Unspecified(), testDst6, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv6 from loopback", udp6(netip.IPv6Loopback(), netip.IPv6Loopback(), 1, testPort, testKnock), 0, 0, 0, nil, "::1"},
		{"ipv4 from 0.0.0.0/8", udp4(netip.MustParseAddr("0.1.2.3"), testDst4, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv4 from multicast", udp4(netip.MustParseAddr("224.0.0.1"), testDst4, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
		{"ipv4 from broadcast", udp4(netip.MustParseAddr("255.255.255.255"), testDst4, 1, testPort, testKnock), 0, 0, 0, ErrMartian, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decode(tc.frame, tc.hdr, tc.proto, tc.status, testPort)
			if err != tc.want { // sentinels are returned unwrapped
				t.Fatalf("decode: err = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if got := p.Src.String(); got != tc.wantSrc {
				t.Errorf("Src = %s, want %s", got, tc.wantSrc)
			}
			if p.Src.Is4() != p.Dst.Is4() || p.Src.Is4In6() || p.Dst.Is4In6() {
				t.Errorf("address forms: src %v dst %v", p.Src, p.Dst)
			}
			if p.DstPort != testPort || !mayBeKnock(p.Payload) {
				t.Errorf("decode = %+v: not a candidate", p)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	p, err := decode(udp6(testSrc6, testDst6, 40001, testPort, testKnock), 0, etherTypeIPv6, 0, testPort)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{Src: testSrc6, Dst: testDst6, SrcPort: 40001, DstPort: testPort}
	if p.Src != want.Src || p.Dst != want.Dst || p.SrcPort != want.SrcPort || p.DstPort != want.DstPort {
		t.Errorf("decode = %+v, want %+v", p, want)
	}
	if !bytes.Equal(p.Payload, testKnock) {
		t.Errorf("Payload = %q, want %q", p.Payload, testKnock)
	}
	// The padding of a minimum-size Ethernet frame, and bytes after the
	// UDP datagram inside the IP packet, are not payload.
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	pkt := udp4(testSrc4, testDst4, 1, testPort, testKnock)
	pkt = append(pkt, "trailer"...)
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	binary.BigEndian.PutUint16(pkt[10:], 0)
	binary.BigEndian.PutUint16(pkt[10:], fold(checksum(0, pkt[:20])))
	p, err = decode(ether(mac, mac, -1, etherTypeIPv4, pkt), 14, 0, 0, testPort)
	if err != nil || !bytes.Equal(p.Payload, testKnock) || p.Dst != testDst4 || p.SrcPort != 1 || cap(p.Payload) != len(p.Payload) {
		t.Errorf("frame with trailer: %+v, %v", p, err)
	}
}

// TestMayBeKnock: the first byte and length rule of the kernel prefilter,
// from the protocol's constants (CLASSIC-2.3, 2.4, 2.6, MODERN-12.1).
func TestMayBeKnock(t *testing.T) {
	classic := func(n int) []byte { return []byte("9" + strings.Repeat("a", n-1)) }
	modern := func(n int) []byte { return append([]byte{protocol.ModernMagic}, make([]byte, n-1)...) }
	for _, tc := range []struct {
		payload []byte
		want    bool
	}{
		{classic(protocol.MinClassicLen), true},
		{classic(protocol.MinClassicLen - 1), false},
		{classic(protocol.MaxClassicLen + 1), true}, // the newline of CLASSIC-2.4
		{classic(protocol.MaxClassicLen + 2), false},
		{[]byte("0" + strings.Repeat(" ", protocol.MinClassicLen-1)), true},
		{modern(protocol.MinModernLen), true},
		{modern(protocol.MaxModernLen), true},
		{modern(protocol.MinModernLen - 1), false},
		{modern(protocol.MaxModernLen + 1), false},
		{append([]byte("/"), classic(60)[1:]...), false}, // '0'-1
		{append([]byte(":"), classic(60)[1:]...), false}, // '9'+1
		{append([]byte{protocol.ModernMagic + 1}, modern(100)[1:]...), false},
		{nil, false},
	} {
		if got := mayBeKnock(tc.payload); got != tc.want {
			t.Errorf("mayBeKnock(%d bytes starting %#x) = %v, want %v", len(tc.payload), tc.payload[:min(1, len(tc.payload))], got, tc.want)
		}
	}
}

// TestChecksum: the checksum helpers agree with the test builders on every
// length and split, odd ones included.
func TestChecksum(t *testing.T) {
	b := make([]byte, 101)
	for i := range b {
		b[i] = byte(i*37 + 11)
	}
	for n := range len(b) {
		want := ^fold(checksum(0, b[:n]))
		if got := csumFold(csumAdd(0, b[:n])); got != want {
			t.Fatalf("%d bytes: sum %#04x, want %#04x", n, got, want)
		}
		for split := 0; split <= n; split += 2 {
			if got := csumFold(csumAdd(csumAdd(0, b[:split]), b[split:n])); got != want {
				t.Fatalf("%d bytes split at %d: sum %#04x, want %#04x", n, split, got, want)
			}
		}
	}
	all := bytes.Repeat([]byte{0xff}, 1<<16)
	if got := csumFold(csumAdd(0, all)); got != 0xffff {
		t.Errorf("all ones: %#04x", got)
	}
}

func TestDecodeErrorsAreSentinels(t *testing.T) {
	for _, e := range []error{ErrTruncated, ErrIPOptions, ErrFragment, ErrChecksum, ErrMartian, ErrNotLocal, ErrNotCandidate} {
		if !errors.Is(e, e) || e.Error() == "" {
			t.Errorf("%v is not a usable sentinel", e)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := [][]byte{
		udp4(testSrc4, testDst4, 40000, testPort, testKnock),
		udp6(testSrc6, testDst6, 40000, testPort, testKnock),
		tcp4(testSrc4, testDst4, 40000, 22, tcpFlagSYN),
		ipv4(testSrc4, testDst4, protoUDP, 0x2000, nil, testKnock),
	}
	var sink Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			p, _ := decode(f, 0, 0, 0, testPort)
			sink = p
		}
	})
	_ = sink
	if allocs != 0 {
		t.Errorf("decode allocates %v times per run, want 0", allocs)
	}
}

// BenchmarkDecode: a knock with the UDP checksum verified in software (the
// worst case: a device that does not verify it), and one the kernel says
// is verified.
func BenchmarkDecode(b *testing.B) {
	for _, bc := range []struct {
		name   string
		frame  []byte
		status uint32
	}{
		{"ipv4-sw-checksum", udp4(testSrc4, testDst4, 40000, testPort, testKnock), 0},
		{"ipv4-csum-valid", udp4(testSrc4, testDst4, 40000, testPort, testKnock), tpStatusCsumValid},
		{"ipv6-sw-checksum", udp6(testSrc6, testDst6, 40000, testPort, testKnock), 0},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.frame)))
			var p Packet
			var err error
			for b.Loop() {
				p, err = decode(bc.frame, 0, 0, bc.status, testPort)
			}
			if err != nil || p.DstPort != testPort {
				b.Fatal(p, err)
			}
		})
	}
}
