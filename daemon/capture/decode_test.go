package capture

import (
	"bytes"
	"errors"
	"testing"
)

func TestDecode(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	v4 := udp4(testSrc4, testDst4, 40000, 1001, testKnock)
	v6 := udp6(testSrc6, testDst6, 40001, 1001, testKnock)
	hbh := []byte{ProtoUDP, 0, 1, 4, 0, 0, 0, 0} // next=UDP, len 0 (8 bytes), PadN
	frag6 := []byte{ProtoUDP, 0, 0, 1, 0, 0, 0, 1}
	ipOpt := []byte{1, 1, 1, 0} // NOP NOP NOP EOL
	shortTotal := append([]byte{}, v4...)
	shortTotal[3] = 10 // total length below the header length
	badULen := append([]byte{}, v4...)
	badULen[20+5] = 4 // UDP length 4 < 8

	tests := []struct {
		name    string
		frame   []byte
		hdr     int
		proto   uint16
		want    error
		wantSrc string
		wantTCP uint8
	}{
		{"ipv4 udp cooked", v4, 0, etherTypeIPv4, nil, "198.18.0.1", 0},
		{"ipv4 udp nibble", v4, 0, 0, nil, "198.18.0.1", 0},
		{"ipv4 udp ethernet padded", ether(mac, mac, -1, etherTypeIPv4, udp4(testSrc4, testDst4, 40000, 1001, []byte("x"))), 14, 0, nil, "198.18.0.1", 0},
		{"ipv4 DF is not a fragment", ipv4(testSrc4, testDst4, ProtoUDP, 0x4000, nil, l4(testSrc4, testDst4, ProtoUDP, 1, 1001, 0, testKnock)), 0, 0, nil, "198.18.0.1", 0},
		{"ipv4 MF", ipv4(testSrc4, testDst4, ProtoUDP, 0x2000, nil, l4(testSrc4, testDst4, ProtoUDP, 1, 1001, 0, testKnock)), 0, 0, ErrFragment, "", 0},
		// 0x0020 is MF read without byte swapping: an offset of 32, a fragment too.
		{"ipv4 offset", ipv4(testSrc4, testDst4, ProtoUDP, 0x0020, nil, testKnock), 0, 0, ErrFragment, "", 0},
		{"ipv4 options", ipv4(testSrc4, testDst4, ProtoUDP, 0, ipOpt, l4(testSrc4, testDst4, ProtoUDP, 1, 1001, 0, testKnock)), 0, 0, ErrIPOptions, "", 0},
		{"ipv4 tcp syn", tcp4(testSrc4, testDst4, 40000, 22, TCPFlagSYN), 0, etherTypeIPv4, nil, "198.18.0.1", TCPFlagSYN},
		{"ipv4 icmp", ipv4(testSrc4, testDst4, 1, 0, nil, l4(testSrc4, testDst4, 1, 0, 0, 0, nil)), 0, 0, ErrNotCandidate, "", 0},
		{"ipv4 total below header", shortTotal, 0, 0, ErrTruncated, "", 0},
		{"ipv4 total beyond frame", v4[:len(v4)-1], 0, 0, ErrTruncated, "", 0},
		{"ipv4 bad udp length", badULen, 0, 0, ErrTruncated, "", 0},
		{"ipv4 short", v4[:19], 0, 0, ErrTruncated, "", 0},
		{"ipv4 tcp short", ipv4(testSrc4, testDst4, ProtoTCP, 0, nil, make([]byte, 12)), 0, 0, ErrTruncated, "", 0},
		{"ipv4 ihl 4", append([]byte{0x44}, v4[1:]...), 0, 0, ErrTruncated, "", 0},
		{"ipv6 udp", v6, 0, etherTypeIPv6, nil, "2001:db8::1", 0},
		{"ipv6 udp ethernet", ether(mac, mac, -1, etherTypeIPv6, v6), 14, 0, nil, "2001:db8::1", 0},
		{"ipv6 tcp syn", tcp6(testSrc6, testDst6, 40000, 22, TCPFlagSYN), 0, etherTypeIPv6, nil, "2001:db8::1", TCPFlagSYN},
		{"ipv6 hop-by-hop", ipv6(testSrc6, testDst6, 0, hbh, l4(testSrc6, testDst6, ProtoUDP, 1, 1001, 0, testKnock)), 0, 0, ErrIPOptions, "", 0},
		{"ipv6 fragment", ipv6(testSrc6, testDst6, ipv6NextFragment, frag6, l4(testSrc6, testDst6, ProtoUDP, 1, 1001, 0, testKnock)), 0, 0, ErrFragment, "", 0},
		{"ipv6 icmp", ipv6(testSrc6, testDst6, 58, nil, []byte{128, 0, 0, 0}), 0, 0, ErrNotCandidate, "", 0},
		{"ipv6 short", v6[:39], 0, 0, ErrTruncated, "", 0},
		{"ipv6 payload beyond frame", v6[:len(v6)-1], 0, 0, ErrTruncated, "", 0},
		{"proto says ipv6, packet is ipv4", v4, 0, etherTypeIPv6, ErrTruncated, "", 0},
		{"not ip", v4, 0, 0x0806, ErrTruncated, "", 0},
		{"wrong link header", ether(mac, mac, -1, etherTypeIPv4, v4), 18, 0, ErrTruncated, "", 0},
		{"link header beyond frame", v4, len(v4), 0, ErrTruncated, "", 0},
		{"negative link header", v4, -1, 0, ErrTruncated, "", 0},
		{"empty", nil, 0, 0, ErrTruncated, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := decode(tc.frame, tc.hdr, tc.proto)
			if err != tc.want { // sentinels are returned unwrapped
				t.Fatalf("decode: err = %v, want %v", err, tc.want)
			}
			if err != nil {
				return
			}
			if got := p.Src.String(); got != tc.wantSrc {
				t.Errorf("Src = %s, want %s", got, tc.wantSrc)
			}
			if p.Src.Is4() != p.Dst.Is4() || p.Src.Is4In6() {
				t.Errorf("address forms: src %v dst %v", p.Src, p.Dst)
			}
			if p.TCPFlags != tc.wantTCP {
				t.Errorf("TCPFlags = %#x, want %#x", p.TCPFlags, tc.wantTCP)
			}
			if p.Proto == ProtoTCP && p.Payload != nil {
				t.Errorf("TCP payload = %q, want nil", p.Payload)
			}
		})
	}
}

func TestDecodeFields(t *testing.T) {
	p, err := decode(udp6(testSrc6, testDst6, 40001, 1001, testKnock), 0, etherTypeIPv6)
	if err != nil {
		t.Fatal(err)
	}
	want := Packet{Src: testSrc6, Dst: testDst6, SrcPort: 40001, DstPort: 1001, Proto: ProtoUDP}
	if p.Src != want.Src || p.Dst != want.Dst || p.SrcPort != want.SrcPort || p.DstPort != want.DstPort || p.Proto != want.Proto {
		t.Errorf("decode = %+v, want %+v", p, want)
	}
	if !bytes.Equal(p.Payload, testKnock) {
		t.Errorf("Payload = %q, want %q", p.Payload, testKnock)
	}
	// The padding of a minimum-size Ethernet frame is not payload.
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	p, err = decode(ether(mac, mac, -1, etherTypeIPv4, udp4(testSrc4, testDst4, 1, 1001, []byte("ab"))), 14, 0)
	if err != nil || string(p.Payload) != "ab" || p.Dst != testDst4 || p.DstPort != 1001 || p.SrcPort != 1 {
		t.Errorf("padded frame: %+v, %v", p, err)
	}
	// An IPv4-mapped IPv6 destination is reported in its 4-byte form.
	mapped := udp6(testSrc6, netipMapped(testDst4), 1, 1001, nil)
	if p, err = decode(mapped, 0, 0); err != nil || !p.Dst.Is4() {
		t.Errorf("mapped: %v, %v", p.Dst, err)
	}
}

func TestDecodeErrorsAreSentinels(t *testing.T) {
	for _, e := range []error{ErrTruncated, ErrIPOptions, ErrFragment, ErrNotLocal, ErrNotCandidate} {
		if !errors.Is(e, e) || e.Error() == "" {
			t.Errorf("%v is not a usable sentinel", e)
		}
	}
}

func TestDecodeAllocs(t *testing.T) {
	frames := [][]byte{
		udp4(testSrc4, testDst4, 40000, 1001, testKnock),
		udp6(testSrc6, testDst6, 40000, 1001, testKnock),
		tcp4(testSrc4, testDst4, 40000, 22, TCPFlagSYN),
		ipv4(testSrc4, testDst4, ProtoUDP, 0x2000, nil, testKnock),
	}
	var sink Packet
	allocs := testing.AllocsPerRun(100, func() {
		for _, f := range frames {
			p, _ := decode(f, 0, 0)
			sink = p
		}
	})
	_ = sink
	if allocs != 0 {
		t.Errorf("decode allocates %v times per run, want 0", allocs)
	}
}

func BenchmarkDecode(b *testing.B) {
	frame := udp4(testSrc4, testDst4, 40000, 1001, testKnock)
	b.ReportAllocs()
	b.SetBytes(int64(len(frame)))
	var p Packet
	var err error
	for b.Loop() {
		p, err = decode(frame, 0, etherTypeIPv4)
	}
	if err != nil || p.DstPort != 1001 {
		b.Fatal(p, err)
	}
}
