package capture

import (
	"encoding/binary"
	"testing"

	"golang.org/x/net/bpf"
)

// skb is what the test interpreter knows about a frame besides its bytes.
type skb struct {
	data    []byte
	netOff  int    // offset of the network header in data
	proto   uint16 // skb->protocol
	pktType uint32
}

// runFilter interprets the subset of classic BPF buildFilter emits, with
// the Linux extensions it uses (ancillary loads and SKF_NET_OFF), so the
// filter can be checked on many packets without a kernel. A load out of
// range rejects the packet, as in the kernel.
func runFilter(t *testing.T, prog []bpf.RawInstruction, s skb) uint32 {
	t.Helper()
	const skfAdOff = 0xfffff000
	load := func(k uint32, size int) (uint32, bool) {
		off := int(k)
		switch {
		case k >= skfAdOff:
			switch k - skfAdOff {
			case 0:
				return uint32(s.proto), true
			case 4:
				return s.pktType, true
			}
			t.Fatalf("unsupported extension %#x", k)
		case k >= skfNetOff:
			off = s.netOff + int(k-skfNetOff)
		}
		if off < 0 || off+size > len(s.data) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(s.data[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(s.data[off:])), true
		}
		return binary.BigEndian.Uint32(s.data[off:]), true
	}
	var a, x uint32
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		sizes := map[uint16]int{0x00: 4, 0x08: 2, 0x10: 1}
		switch op := in.Op; {
		case op&0x07 == 0x00 && op&0xe0 == 0x20: // ld abs
			v, ok := load(in.K, sizes[op&0x18])
			if !ok {
				return 0
			}
			a = v
		case op&0x07 == 0x00 && op&0xe0 == 0x40: // ld ind
			v, ok := load(x+in.K, sizes[op&0x18])
			if !ok {
				return 0
			}
			a = v
		case op == 0xb1: // ldxb 4*([k]&0xf)
			v, ok := load(in.K, 1)
			if !ok {
				return 0
			}
			x = 4 * (v & 0xf)
		case op&0x07 == 0x04: // alu k
			switch op & 0xf0 {
			case 0x00:
				a += in.K
			case 0x50:
				a &= in.K
			case 0x60:
				a <<= in.K
			default:
				t.Fatalf("unsupported alu op %#x", op)
			}
		case op&0x07 == 0x05: // jumps
			var taken bool
			switch op & 0xf0 {
			case 0x00:
				pc += int(in.K)
				continue
			case 0x10:
				taken = a == in.K
			case 0x40:
				taken = a&in.K != 0
			default:
				t.Fatalf("unsupported jump %#x", op)
			}
			if taken {
				pc += int(in.Jt)
			} else {
				pc += int(in.Jf)
			}
		case op == 0x06: // ret k
			return in.K
		case op == 0x07: // tax
			x = a
		default:
			t.Fatalf("unsupported instruction %#x", op)
		}
	}
	t.Fatal("filter ran off its end")
	return 0
}

func TestFilter(t *testing.T) {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	const port = 1001
	opt := []byte{1, 1, 1, 0}
	hbh := func(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	frag6 := []byte{ProtoUDP, 0, 0, 8, 0, 0, 0, 1} // offset 1 (non-first)
	cases := []struct {
		name   string
		pkt    []byte
		wantIn bool // accepted without SYN tracking
		synIn  bool // accepted with SYN tracking
	}{
		{"v4 knock", udp4(testSrc4, testDst4, 1, port, testKnock), true, true},
		{"v4 other port", udp4(testSrc4, testDst4, 1, 53, testKnock), false, false},
		{"v4 knock with options", ipv4(testSrc4, testDst4, ProtoUDP, 0, opt, l4(testSrc4, testDst4, ProtoUDP, 1, port, 0, testKnock)), true, true},
		{"v4 other port with options", ipv4(testSrc4, testDst4, ProtoUDP, 0, opt, l4(testSrc4, testDst4, ProtoUDP, 1, 53, 0, testKnock)), false, false},
		{"v4 first fragment to knock port", ipv4(testSrc4, testDst4, ProtoUDP, 0x2000, nil, l4(testSrc4, testDst4, ProtoUDP, 1, port, 0, testKnock)), true, true},
		{"v4 first fragment elsewhere", ipv4(testSrc4, testDst4, ProtoUDP, 0x2000, nil, l4(testSrc4, testDst4, ProtoUDP, 1, 53, 0, testKnock)), false, false},
		{"v4 later fragment", ipv4(testSrc4, testDst4, ProtoUDP, 0x0010, nil, testKnock), true, true},
		{"v4 syn", tcp4(testSrc4, testDst4, 1, 22, TCPFlagSYN), false, true},
		{"v4 syn-ack", tcp4(testSrc4, testDst4, 1, 22, TCPFlagSYN|TCPFlagACK), false, false},
		{"v4 ack", tcp4(testSrc4, testDst4, 1, 22, TCPFlagACK), false, false},
		{"v4 syn with options", ipv4(testSrc4, testDst4, ProtoTCP, 0, opt, l4(testSrc4, testDst4, ProtoTCP, 1, 22, TCPFlagSYN, nil)), false, true},
		{"v4 icmp", ipv4(testSrc4, testDst4, 1, 0, nil, l4(testSrc4, testDst4, 1, 0, 0, 0, nil)), false, false},
		{"v6 knock", udp6(testSrc6, testDst6, 1, port, testKnock), true, true},
		{"v6 other port", udp6(testSrc6, testDst6, 1, 53, testKnock), false, false},
		{"v6 knock behind hop-by-hop", ipv6(testSrc6, testDst6, 0, hbh(ProtoUDP), l4(testSrc6, testDst6, ProtoUDP, 1, port, 0, testKnock)), true, true},
		{"v6 other port behind dest opts", ipv6(testSrc6, testDst6, 60, hbh(ProtoUDP), l4(testSrc6, testDst6, ProtoUDP, 1, 53, 0, testKnock)), false, false},
		{"v6 mld behind hop-by-hop", ipv6(testSrc6, testDst6, 0, hbh(58), []byte{143, 0, 0, 0}), false, false},
		{"v6 udp fragment", ipv6(testSrc6, testDst6, ipv6NextFragment, frag6, testKnock), true, true},
		{"v6 syn", tcp6(testSrc6, testDst6, 1, 22, TCPFlagSYN), false, true},
		{"v6 syn-ack", tcp6(testSrc6, testDst6, 1, 22, TCPFlagSYN|TCPFlagACK), false, false},
		{"v6 icmp", ipv6(testSrc6, testDst6, 58, nil, []byte{128, 0, 0, 0}), false, false},
		{"truncated v4 knock", udp4(testSrc4, testDst4, 1, port, nil)[:21], false, false},
	}
	for _, syn := range []bool{false, true} {
		network, err := buildFilter(filterSpec{extProto: true, port: port, syn: syn})
		if err != nil {
			t.Fatal(err)
		}
		raw14, err := buildFilter(filterSpec{base: 14, port: port, syn: syn})
		if err != nil {
			t.Fatal(err)
		}
		diag, err := buildFilter(filterSpec{base: skfNetOff, extProto: true, port: port, syn: syn})
		if err != nil {
			t.Fatal(err)
		}
		raw18, err := buildFilter(filterSpec{base: 18, port: port, syn: syn})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			want := tc.wantIn
			if syn {
				want = tc.synIn
			}
			proto := uint16(etherTypeIPv4)
			if tc.pkt[0]>>4 == 6 {
				proto = etherTypeIPv6
			}
			frame := ether(mac, mac, -1, proto, tc.pkt)
			check := func(kind string, prog []bpf.RawInstruction, s skb, want bool) {
				t.Helper()
				if got := runFilter(t, prog, s) != 0; got != want {
					t.Errorf("syn=%v %s: %s accepted=%v, want %v", syn, tc.name, kind, got, want)
				}
			}
			check("network", network, skb{data: tc.pkt, proto: proto}, want)
			check("network outgoing", network, skb{data: tc.pkt, proto: proto, pktType: packetOutgoing}, false)
			check("raw 14", raw14, skb{data: frame, netOff: 14, proto: proto}, want)
			check("diag", diag, skb{data: frame, netOff: 14, proto: proto}, want)
			check("raw 18 (wrong)", raw18, skb{data: frame, netOff: 14, proto: proto}, false)
		}
	}
}
