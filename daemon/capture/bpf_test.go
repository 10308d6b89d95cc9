package capture

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/net/bpf"
)

// skb is what the test interpreter knows about a frame besides its bytes.
type skb struct {
	buf     []byte
	dataOff int    // where offset 0 of absolute loads is in buf (skb->data)
	netOff  int    // offset of the network header in buf
	proto   uint16 // skb->protocol
	pktType uint32
}

// runFilter interprets the subset of classic BPF buildFilter emits, with
// the Linux extensions it uses (ancillary loads and SKF_NET_OFF), so the
// filter can be checked on many packets without a kernel. A load out of
// range rejects the packet, as in the kernel.
func runFilter(t testing.TB, prog []bpf.RawInstruction, s skb) uint32 {
	t.Helper()
	const skfAdOff = 0xfffff000
	load := func(k uint32, size int) (uint32, bool) {
		off := s.dataOff + int(int32(k))
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
		case int32(k) < 0:
			return 0, false
		}
		if off < 0 || off+size > len(s.buf) {
			return 0, false
		}
		switch size {
		case 1:
			return uint32(s.buf[off]), true
		case 2:
			return uint32(binary.BigEndian.Uint16(s.buf[off:])), true
		}
		return binary.BigEndian.Uint32(s.buf[off:]), true
	}
	var a, x uint32
	var mem [16]uint32
	sizes := [4]int{0x00 >> 3: 4, 0x08 >> 3: 2, 0x10 >> 3: 1}
	for pc := 0; pc < len(prog); pc++ {
		in := prog[pc]
		switch op := in.Op; {
		case op&0x07 == 0x00 && op&0xe0 == 0x20: // ld abs
			v, ok := load(in.K, sizes[(op&0x18)>>3])
			if !ok {
				return 0
			}
			a = v
		case op&0x07 == 0x00 && op&0xe0 == 0x40: // ld ind
			v, ok := load(x+in.K, sizes[(op&0x18)>>3])
			if !ok {
				return 0
			}
			a = v
		case op == 0x60: // ld M[k]
			a = mem[in.K]
		case op == 0x01: // ldx #k
			x = in.K
		case op == 0xb1: // ldxb 4*([k]&0xf)
			v, ok := load(in.K, 1)
			if !ok {
				return 0
			}
			x = 4 * (v & 0xf)
		case op == 0x02: // st M[k]
			mem[in.K] = a
		case op&0x07 == 0x04: // alu k
			switch op & 0xf0 {
			case 0x00:
				a += in.K
			case 0x10:
				a -= in.K
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
			case 0x20:
				taken = a > in.K
			case 0x30:
				taken = a >= in.K
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

// filterCase is the program of one mode, with what it sees of a frame.
type filterCase struct {
	name string
	prog []bpf.RawInstruction
	// view makes the skb the program sees from an IP packet.
	view func(pkt []byte) skb
	// blind programs cannot find anything (a wrong link header length).
	blind bool
}

func filters(t testing.TB) []filterCase {
	mac := [6]byte{2, 0, 0, 0, 0, 1}
	build := func(fs filterSpec) []bpf.RawInstruction {
		prog, err := buildFilter(fs)
		if err != nil {
			t.Fatal(err)
		}
		if len(prog) > 255 {
			t.Fatalf("filter of %d instructions", len(prog))
		}
		return prog
	}
	proto := func(pkt []byte) uint16 {
		if len(pkt) > 0 && pkt[0]>>4 == 6 {
			return etherTypeIPv6
		}
		return etherTypeIPv4
	}
	cooked := func(pkt []byte) skb { return skb{buf: pkt, proto: proto(pkt)} }
	framed := func(pkt []byte) skb {
		return skb{buf: ether(mac, mac, -1, proto(pkt), pkt), netOff: 14, proto: proto(pkt)}
	}
	// A UDP socket's filter sees the datagram from the UDP header on.
	socket := func(pkt []byte) skb {
		s := skb{buf: pkt, proto: proto(pkt), dataOff: ipv4MinHeaderLen}
		if s.proto == etherTypeIPv6 {
			s.dataOff = ipv6HeaderLen
		}
		if len(pkt) > 0 && pkt[0]>>4 == 4 {
			s.dataOff = int(pkt[0]&0xf) * 4
		}
		return s
	}
	return []filterCase{
		{"network", build(filterSpec{extProto: true, port: testPort}), cooked, false},
		{"raw 14", build(filterSpec{base: 14, port: testPort}), framed, false},
		{"raw diagnosis", build(filterSpec{base: skfNetOff, extProto: true, port: testPort}), framed, false},
		{"raw 18 (wrong)", build(filterSpec{base: 18, port: testPort}), framed, true},
		{"socket", build(filterSpec{socket: true, port: testPort}), socket, false},
	}
}

// TestFilter checks the kernel prefilter rule by rule, for both families
// and every mode: it passes exactly the frames that may be knocks
// (CLASSIC-2.3, 2.6, 4.3; knock port of CLASSIC-4.4), dropping the rest
// before user space.
func TestFilter(t *testing.T) {
	opt := []byte{1, 1, 1, 0}
	hbh := func(next uint8) []byte { return []byte{next, 0, 1, 4, 0, 0, 0, 0} }
	frag6 := []byte{protoUDP, 0, 0, 8, 0, 0, 0, 1} // offset 1 (non-first)
	first6 := []byte{protoUDP, 0, 0, 1, 0, 0, 0, 1}
	classic := func(n int) []byte { return append([]byte("1"), bytes.Repeat([]byte("a"), n-1)...) }
	modern := func(n int) []byte { return append([]byte{protocol.ModernMagic}, make([]byte, n-1)...) }
	first := func(b byte) []byte { return append([]byte{b}, testKnock[1:]...) }
	u4 := func(payload []byte) []byte { return udp4(testSrc4, testDst4, 1, testPort, payload) }
	u6 := func(payload []byte) []byte { return udp6(testSrc6, testDst6, 1, testPort, payload) }
	type tcase struct {
		name string
		pkt  []byte
		in   bool
	}
	var cases []tcase
	for _, fam := range []struct {
		name string
		udp  func([]byte) []byte
	}{{"v4", u4}, {"v6", u6}} {
		for _, c := range []tcase{
			{"knock", fam.udp(testKnock), true},
			{"knock with newline", fam.udp(append(append([]byte{}, testKnock...), '\n')), true},
			{"shortest classic", fam.udp(classic(protocol.MinClassicLen)), true},
			{"classic one too short", fam.udp(classic(protocol.MinClassicLen - 1)), false},
			{"longest classic with newline", fam.udp(classic(protocol.MaxClassicLen + 1)), true},
			{"classic one too long", fam.udp(classic(protocol.MaxClassicLen + 2)), false},
			{"shortest modern", fam.udp(modern(protocol.MinModernLen)), true},
			{"modern one too short", fam.udp(modern(protocol.MinModernLen - 1)), false},
			{"longest modern", fam.udp(modern(protocol.MaxModernLen)), true},
			{"modern one too long", fam.udp(modern(protocol.MaxModernLen + 1)), false},
			{"classic length but modern magic", fam.udp(modern(protocol.MinClassicLen)), protocol.MinClassicLen >= protocol.MinModernLen},
			{"modern length but a digit", fam.udp(classic(protocol.MaxModernLen)), protocol.MaxModernLen <= protocol.MaxClassicLen+1},
			{"first byte '0'", fam.udp(first('0')), true},
			{"first byte '9'", fam.udp(first('9')), true},
			{"first byte '/'", fam.udp(first('/')), false},
			{"first byte ':'", fam.udp(first(':')), false},
			{"first byte 0xD1", fam.udp(first(protocol.ModernMagic - 1)), false},
			{"first byte space", fam.udp(first(' ')), false},
			{"empty payload", fam.udp(nil), false},
			{"payload of one", fam.udp([]byte("1")), false},
		} {
			c.name = fam.name + " " + c.name
			cases = append(cases, c)
		}
	}
	cases = append(cases, []tcase{
		{"v4 other port", udp4(testSrc4, testDst4, 1, 53, testKnock), false},
		{"v4 options", ipv4(testSrc4, testDst4, protoUDP, 0, opt, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v4 first fragment", ipv4(testSrc4, testDst4, protoUDP, ipv4FlagMF, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v4 later fragment", ipv4(testSrc4, testDst4, protoUDP, 0x0010, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v4 last fragment", ipv4(testSrc4, testDst4, protoUDP, 1, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v4 DF", ipv4(testSrc4, testDst4, protoUDP, 0x4000, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)), true},
		{"v4 tcp", tcp4(testSrc4, testDst4, 1, testPort, tcpFlagSYN), false},
		{"v4 icmp", ipv4(testSrc4, testDst4, 1, 0, nil, l4(testSrc4, testDst4, 1, 0, 0, 0, nil)), false},
		{"v6 other port", udp6(testSrc6, testDst6, 1, 53, testKnock), false},
		{"v6 behind hop-by-hop", ipv6(testSrc6, testDst6, ipv6NextHopByHop, hbh(protoUDP), l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v6 behind dest opts", ipv6(testSrc6, testDst6, ipv6NextDestOpts, hbh(protoUDP), l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v6 behind routing", ipv6(testSrc6, testDst6, ipv6NextRouting, hbh(protoUDP), l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v6 first fragment", ipv6(testSrc6, testDst6, ipv6NextFragment, first6, l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)), false},
		{"v6 later fragment", ipv6(testSrc6, testDst6, ipv6NextFragment, frag6, testKnock), false},
		{"v6 tcp", tcp6(testSrc6, testDst6, 1, testPort, tcpFlagSYN), false},
		{"v6 icmp", ipv6(testSrc6, testDst6, 58, nil, []byte{128, 0, 0, 0}), false},
		{"v4 knock cut before its payload", u4(testKnock)[:ipv4MinHeaderLen+udpHeaderLen], false},
		{"v6 knock cut before its payload", u6(testKnock)[:ipv6HeaderLen+udpHeaderLen], false},
		// The filter reads the length from the UDP header; the decoder
		// then finds the packet truncated.
		{"v4 knock cut in its payload", u4(testKnock)[:ipv4MinHeaderLen+udpHeaderLen+1], true},
		{"v6 knock cut in its payload", u6(testKnock)[:ipv6HeaderLen+udpHeaderLen+1], true},
	}...)
	for _, f := range filters(t) {
		for _, tc := range cases {
			want := tc.in && !f.blind
			s := f.view(tc.pkt)
			if got := runFilter(t, f.prog, s) != 0; got != want {
				t.Errorf("%s: %s accepted=%v, want %v", f.name, tc.name, got, want)
			}
			// Only frames addressed to this host pass.
			for _, typ := range []uint32{1, 2, 3, 4, 5} { // broadcast, multicast, other host, outgoing, loopback
				s.pktType = typ
				if runFilter(t, f.prog, s) != 0 {
					t.Errorf("%s: %s with pkt_type %d accepted", f.name, tc.name, typ)
				}
			}
		}
	}
}

// TestFilterMatchesDecode: on every seed, the filter and the decoder agree:
// a frame the decoder delivers passes the filter (no knock is lost in the
// kernel), and a frame the filter passes is not one the decoder calls
// "not a candidate", a fragment or one with options.
func TestFilterMatchesDecode(t *testing.T) {
	fs := filters(t)
	for _, pkt := range filterSeeds() {
		checkFilterMatchesDecode(t, fs, pkt)
	}
}

// FuzzFilterMatchesDecode is TestFilterMatchesDecode on any bytes.
func FuzzFilterMatchesDecode(f *testing.F) {
	for _, pkt := range filterSeeds() {
		f.Add(pkt)
	}
	fs := filters(f)
	f.Fuzz(func(t *testing.T, pkt []byte) { checkFilterMatchesDecode(t, fs, pkt) })
}

func filterSeeds() [][]byte {
	return [][]byte{
		udp4(testSrc4, testDst4, 1, testPort, testKnock),
		udp6(testSrc6, testDst6, 1, testPort, testKnock),
		udp4(testSrc4, testDst4, 1, testPort, append([]byte{protocol.ModernMagic}, make([]byte, protocol.MinModernLen)...)),
		udp4(testSrc4, testDst4, 1, testPort+1, testKnock),
		ipv4(testSrc4, testDst4, protoUDP, ipv4FlagMF, nil, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)),
		ipv4(testSrc4, testDst4, protoUDP, 0, []byte{1, 1, 1, 0}, l4(testSrc4, testDst4, protoUDP, 1, testPort, 0, testKnock)),
		ipv6(testSrc6, testDst6, 0, []byte{protoUDP, 0, 1, 4, 0, 0, 0, 0}, l4(testSrc6, testDst6, protoUDP, 1, testPort, 0, testKnock)),
		tcp4(testSrc4, testDst4, 1, testPort, tcpFlagSYN),
	}
}

func checkFilterMatchesDecode(t testing.TB, fs []filterCase, pkt []byte) {
	t.Helper()
	if len(pkt) == 0 {
		return
	}
	_, err := decode(pkt, 0, 0, tpStatusCsumValid, testPort)
	for _, f := range fs {
		if f.blind || f.name == "socket" && err == ErrTruncated {
			continue // the kernel would not deliver a malformed packet to a socket
		}
		in := runFilter(t, f.prog, f.view(pkt)) != 0
		switch {
		case err == nil && !in:
			t.Fatalf("%s: the filter drops a frame decode delivers: % x", f.name, pkt)
		case in && (err == ErrNotCandidate || err == ErrFragment || err == ErrIPOptions):
			t.Fatalf("%s: the filter passes a frame decode calls %v: % x", f.name, err, pkt)
		}
	}
}
