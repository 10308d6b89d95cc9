//go:build linux

package capture

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/netsim"
	"github.com/doorman-project/doorman/protocol"
)

// TestIntegrationNetworkMode: IPv4 and IPv6 knocks (CLASSIC-2.7); options
// and fragments never reach user space (CLASSIC-4.3); checksums are
// verified; only knocks to the interface's own addresses count
// (CLASSIC-4.4).
func TestIntegrationNetworkMode(t *testing.T) {
	n := newTestNet(t)
	c := open(t, n.b, Config{Interface: n.ifB(), KnockPort: testPort})
	if c.LinkType() != "ethernet" || c.LinkHeaderLen() != 0 {
		t.Errorf("LinkType, LinkHeaderLen = %q, %d; want ethernet, 0", c.LinkType(), c.LinkHeaderLen())
	}
	ch := reader(t, c)
	bIdx := n.link.B.IfIndex
	src, dst := n.a4, n.b4

	t.Run("ipv4 knock", func(t *testing.T) {
		sport := sendUDP(t, n.a, n.knock4, knockTo("v4"))
		p := expectKnock(t, ch, knockTo("v4"))
		want := Packet{Src: src, Dst: dst, SrcPort: sport, DstPort: testPort, IfIndex: bIdx}
		if p.Src != want.Src || p.Dst != want.Dst || p.SrcPort != want.SrcPort || p.DstPort != want.DstPort || p.IfIndex != want.IfIndex {
			t.Errorf("Read = %+v, want %+v", p, want)
		}
		if !p.Src.Is4() {
			t.Errorf("Src %v is not in 4-byte form", p.Src)
		}
	})
	t.Run("ipv6 knock", func(t *testing.T) {
		sport := sendUDP(t, n.a, n.knock6, knockTo("v6"))
		p := expectKnock(t, ch, knockTo("v6"))
		if p.Src != n.a6 || p.Dst != n.b6 || p.SrcPort != sport || p.DstPort != testPort || p.IfIndex != bIdx {
			t.Errorf("Read = %+v", p)
		}
	})
	t.Run("longest candidates fit a ring frame", func(t *testing.T) {
		for _, to := range []netip.AddrPort{n.knock4, n.knock6} {
			long := string([]byte{protocol.ModernMagic}) + strings.Repeat("m", protocol.MaxModernLen-1)
			sendUDP(t, n.a, to, long)
			expectKnock(t, ch, long)
			long = "65535 " + strings.Repeat("g", protocol.MaxGroupLen) + " 0000000000 " + strings.Repeat("0", protocol.MACHexLen) + "\n"
			if len(long) != protocol.MaxClassicLen+1 {
				t.Fatalf("longest classic knock is %d bytes, want %d", len(long), protocol.MaxClassicLen+1)
			}
			sendUDP(t, n.a, to, long)
			expectKnock(t, ch, long)
		}
	})
	t.Run("filtered in the kernel", func(t *testing.T) {
		// None of these reaches Read: the next outcome is the marker.
		sendUDP(t, n.a, netip.AddrPortFrom(n.b4, testPort+1), knockTo("other"))
		sendUDP(t, n.a, netip.AddrPortFrom(n.b6, testPort+1), knockTo("other"))
		sendUDP(t, n.a, n.knock4, "hello")                                     // CLASSIC-2.6: not a knock
		sendUDP(t, n.a, n.knock6, "x"+knockTo("first")[1:])                    // CLASSIC-2.6
		sendUDP(t, n.a, n.knock4, knockTo("short")[:protocol.MinClassicLen-1]) // CLASSIC-2.3
		sendUDP(t, n.a, n.knock6, "1"+strings.Repeat("1", protocol.MaxClassicLen+1))
		dialTCP(t, n.a, netip.AddrPortFrom(n.b4, 2222))
		dialTCP(t, n.a, netip.AddrPortFrom(n.b6, 2222))
		// CLASSIC-4.3: IP options, fragments.
		n.inject(t, n.frameToB(ipv4(src, dst, protoUDP, 0, []byte{1, 1, 1, 0}, l4(src, dst, protoUDP, 4000, testPort, 0, []byte(knockTo("opts"))))))
		// A first fragment with MF set that holds the whole knock: the
		// original accepted it because it read MF without byte swapping.
		n.inject(t, n.frameToB(ipv4(src, dst, protoUDP, ipv4FlagMF, nil, l4(src, dst, protoUDP, 4000, testPort, 0, []byte(knockTo("frag"))))))
		n.inject(t, n.frameToB(ipv4(src, dst, protoUDP, 0x0010, nil, []byte("tail of a datagram"))))
		src6, dst6 := n.a6, n.b6
		n.inject(t, n.frameToB(ipv6(src6, dst6, ipv6NextHopByHop, []byte{protoUDP, 0, 1, 4, 0, 0, 0, 0},
			l4(src6, dst6, protoUDP, 4000, testPort, 0, []byte(knockTo("hbh"))))))
		n.inject(t, n.frameToB(ipv6(src6, dst6, ipv6NextFragment, []byte{protoUDP, 0, 0, 1, 0, 0, 0, 1},
			l4(src6, dst6, protoUDP, 4000, testPort, 0, []byte(knockTo("frag6"))))))
		sendUDP(t, n.a, n.knock4, knockTo("marker"))
		expectKnock(t, ch, knockTo("marker"))
	})
	t.Run("checksums", func(t *testing.T) {
		// Frames injected on the veth carry no checksum offload state: the
		// kernel verifies them, and so must capture.
		good := udp4(src, dst, 4000, testPort, []byte(knockTo("sum-ok")))
		n.inject(t, n.frameToB(good))
		expectKnock(t, ch, knockTo("sum-ok"))
		n.inject(t, n.frameToB(withUDPChecksum(good, 0))) // IPv4: no checksum
		expectKnock(t, ch, knockTo("sum-ok"))
		badUDP := append([]byte{}, good...)
		badUDP[len(badUDP)-1] ^= 1
		n.inject(t, n.frameToB(badUDP))
		expectErr(t, ch, ErrChecksum)
		badIP := append([]byte{}, good...)
		badIP[8]-- // TTL changed, header checksum not
		n.inject(t, n.frameToB(badIP))
		expectErr(t, ch, ErrChecksum)
		good6 := udp6(n.a6, n.b6, 4000, testPort, []byte(knockTo("sum6")))
		n.inject(t, n.frameToB(withUDPChecksum(good6, 0))) // IPv6: mandatory
		expectErr(t, ch, ErrChecksum)
		n.inject(t, n.frameToB(good6))
		expectKnock(t, ch, knockTo("sum6"))
	})
	t.Run("ipv4-mapped source over ipv6", func(t *testing.T) {
		// It must not pass for an IPv4 knock from a's address.
		n.inject(t, n.frameToB(udp6(netipMapped(src), n.b6, 4000, testPort, []byte(knockTo("mapped")))))
		expectErr(t, ch, ErrMartian)
	})
	t.Run("802.1Q tagged", func(t *testing.T) {
		must(t, "inject tagged", n.link.A.InjectTagged(100, udp4(src, dst, 4001, testPort, []byte(knockTo("vlan")))))
		p := expectKnock(t, ch, knockTo("vlan"))
		if p.SrcPort != 4001 || p.Dst != dst {
			t.Errorf("Read = %+v", p)
		}
	})
	t.Run("not local", func(t *testing.T) {
		for _, to := range []netip.Addr{n.onLink(99), n.onLink(255), netip.MustParseAddr("127.0.0.1")} {
			n.inject(t, n.frameToB(udp4(src, to, 4002, testPort, []byte(knockTo("x")))))
			expectErr(t, ch, ErrNotLocal)
		}
		n.inject(t, n.frameToB(udp4(netip.MustParseAddr("127.0.0.1"), dst, 4002, testPort, []byte(knockTo("x")))))
		expectErr(t, ch, ErrMartian) // a loopback source off a loopback device
	})
	t.Run("addresses added and removed", func(t *testing.T) {
		added := netip.PrefixFrom(n.onLink(50), 32)
		must(t, "add address", n.b.AddAddr(n.ifB(), added))
		waitKnockTo(t, n, ch, added.Addr(), nil)
		must(t, "remove address", n.b.DelAddr(n.ifB(), added))
		waitKnockTo(t, n, ch, added.Addr(), ErrNotLocal)
	})
}

// waitKnockTo injects knocks to dst until Read's outcome is want (the
// address watcher takes a moment to see a change).
func waitKnockTo(t *testing.T, n *testNet, ch <-chan result, dst netip.Addr, want error) {
	t.Helper()
	for i := 0; ; i++ {
		n.inject(t, n.frameToB(udp4(n.a4, dst, 4003, testPort, []byte(knockTo("addr")))))
		r := next(t, ch)
		if r.err == want {
			if want == nil && r.p.Dst != dst {
				t.Fatalf("Read = %+v", r.p)
			}
			return
		}
		if i == 100 {
			t.Fatalf("knock to %v: %v after %d tries, want %v", dst, r.err, i+1, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestIntegrationRawMode(t *testing.T) {
	n := newTestNet(t)
	good := open(t, n.b, Config{Interface: n.ifB(), Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	if good.LinkHeaderLen() != 14 || good.LinkType() != "ethernet" {
		t.Fatalf("guessed %q, %d; want ethernet, 14", good.LinkType(), good.LinkHeaderLen())
	}
	wrong := open(t, n.b, Config{Interface: n.ifB(), Mode: ModeRaw, LinkHeaderLen: 18, KnockPort: testPort})
	if wrong.LinkHeaderLen() != 18 {
		t.Fatalf("configured length ignored: %d", wrong.LinkHeaderLen())
	}
	var dump syncBuffer
	diag := open(t, n.b, Config{Interface: n.ifB(), Mode: ModeRaw, LinkHeaderLen: 18, KnockPort: testPort, HexDump: &dump})
	goodCh, wrongCh, diagCh := reader(t, good), reader(t, wrong), reader(t, diag)

	sendUDP(t, n.a, n.knock4, knockTo("raw4"))
	expectKnock(t, goodCh, knockTo("raw4"))
	sendUDP(t, n.a, n.knock6, knockTo("raw6"))
	expectKnock(t, goodCh, knockTo("raw6"))
	long := string([]byte{protocol.ModernMagic}) + strings.Repeat("m", protocol.MaxModernLen-1)
	sendUDP(t, n.a, n.knock6, long) // the longest candidate fits a ring frame
	expectKnock(t, goodCh, long)
	// The kernel removes an 802.1Q tag before packet sockets see the
	// frame: the header stays 14 bytes (libpcap would show 18).
	must(t, "inject tagged", n.link.A.InjectTagged(100, udp4(n.a4, n.b4, 4001, testPort, []byte(knockTo("rawvlan")))))
	expectKnock(t, goodCh, knockTo("rawvlan"))

	// With the wrong length the filter misses every knock. All three
	// rings got their copies in the same softirq, so once the diagnostic
	// one has shown them, the wrong one would have them too; the
	// diagnostic one shows them in its dump while Read reports them as
	// malformed.
	for range 3 {
		if r := next(t, diagCh); r.err == nil {
			t.Errorf("diagnostic conn with a wrong length delivered %+v", r.p)
		}
	}
	time.Sleep(20 * time.Millisecond) // the wrong one had time to read them too
	wrong.Close()
	for r := range wrongCh {
		if !errors.Is(r.err, net.ErrClosed) {
			t.Errorf("wrong length delivered %+v %q %v", r.p, r.payload, r.err)
		}
	}
	diag.Close()
	for range diagCh {
	}
	out := dump.String()
	for _, want := range []string{
		"link type ethernet, link header length 18 (configured)",
		"802.1Q vlan 100 tag removed by the kernel",
		"000000raw4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hex dump lacks %q:\n%s", want, out)
		}
	}
}

// TestIntegrationTun: a raw-IP device (no link header), as a tunnel
// interface gives one.
func TestIntegrationTun(t *testing.T) {
	n := newTestNet(t)
	tl, err := n.sim.TunLink(n.a, n.b, netsim.LinkOptions{})
	if errors.Is(err, fs.ErrNotExist) {
		t.Skipf("no tun device: %v", err)
	}
	must(t, "tun link", err)
	tun, peer := tl.B, tl.A.Addr4

	cooked := open(t, n.b, Config{Interface: tun.Name, KnockPort: testPort})
	raw := open(t, n.b, Config{Interface: tun.Name, Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	if cooked.LinkType() != "none (raw IP)" || raw.LinkHeaderLen() != 0 {
		t.Fatalf("tun: %q, raw header %d; want none (raw IP), 0", cooked.LinkType(), raw.LinkHeaderLen())
	}
	cch, rch := reader(t, cooked), reader(t, raw)
	// Written into a's tun device, relayed into b's.
	must(t, "write to tun", tl.A.InjectFrame(udp4(peer, tun.Addr4, 5000, testPort, []byte(knockTo("tun")))))
	for _, ch := range []<-chan result{cch, rch} {
		p := expectKnock(t, ch, knockTo("tun"))
		if p.Src != peer || p.SrcPort != 5000 || p.IfIndex != tun.IfIndex {
			t.Errorf("Read = %+v", p)
		}
	}
}

// TestIntegrationLoopback: knocks over lo count when the admin names lo
// (CLASSIC-4.4), in every mode; each is seen once, not again on its way out.
func TestIntegrationLoopback(t *testing.T) {
	n := newTestNet(t)
	cooked := open(t, n.b, Config{Interface: "lo", KnockPort: testPort})
	raw := open(t, n.b, Config{Interface: "lo", Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	sock := open(t, n.b, Config{Interface: "lo", Mode: ModeSocket, KnockPort: testPort})
	if cooked.LinkType() != "loopback" || raw.LinkHeaderLen() != 14 {
		t.Fatalf("lo: %q, raw header %d", cooked.LinkType(), raw.LinkHeaderLen())
	}
	chans := []<-chan result{reader(t, cooked), reader(t, raw), reader(t, sock)}
	for _, dst := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.IPv6Loopback()} {
		// Two knocks in a row: the second Read must be the second knock,
		// not the first one seen again on its way out.
		sendUDP(t, n.b, netip.AddrPortFrom(dst, testPort), knockTo("lo1"))
		sendUDP(t, n.b, netip.AddrPortFrom(dst, testPort), knockTo("lo2"))
		for _, ch := range chans {
			if p := expectKnock(t, ch, knockTo("lo1")); p.Dst != dst || !p.Src.IsLoopback() {
				t.Errorf("Read = %+v, want from loopback to %v", p, dst)
			}
			expectKnock(t, ch, knockTo("lo2"))
		}
	}
}

// TestIntegrationAny: "any" hears every non-loopback address of the host
// and nothing over a loopback device (CLASSIC-4.4).
func TestIntegrationAny(t *testing.T) {
	n := newTestNet(t)
	if _, err := openErr(t, n.b, Config{Interface: AnyInterface, Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort}); err == nil {
		t.Error("raw mode on any opened")
	}
	// An address of another device counts too, even on lo, as long as
	// it is not a loopback address (an anycast service address, say).
	// 198.19.x: far from the subnets netsim hands out first.
	other := netip.MustParsePrefix("198.19.7.1/32")
	must(t, "address on lo", n.b.AddAddr("lo", other))

	for _, mode := range []Mode{ModeNetwork, ModeSocket} {
		t.Run(mode.String(), func(t *testing.T) {
			c := open(t, n.b, Config{Interface: AnyInterface, Mode: mode, KnockPort: testPort})
			ch := reader(t, c)
			sendUDP(t, n.a, n.knock4, knockTo("any4"))
			if p := expectKnock(t, ch, knockTo("any4")); p.IfIndex != n.link.B.IfIndex {
				t.Errorf("IfIndex = %d, want %d", p.IfIndex, n.link.B.IfIndex)
			}
			sendUDP(t, n.a, n.knock6, knockTo("any6"))
			expectKnock(t, ch, knockTo("any6"))
			n.inject(t, n.frameToB(udp4(n.a4, other.Addr(), 1, testPort, []byte(knockTo("on-lo")))))
			expectKnock(t, ch, knockTo("on-lo"))
			// Over lo: to 127.0.0.1, ::1, and to the host's own addresses
			// from the host itself.
			for _, to := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.5.6.7"), netip.IPv6Loopback(), n.b4, n.b6} {
				sendUDP(t, n.b, netip.AddrPortFrom(to, testPort), knockTo("anylo"))
				expectErr(t, ch, ErrNotLocal)
			}
			// Loopback destinations arriving from outside.
			if mode != ModeSocket { // the kernel drops these before any socket
				n.inject(t, n.frameToB(udp4(n.a4, netip.MustParseAddr("127.0.0.1"), 1, testPort, []byte(knockTo("martian")))))
				expectErr(t, ch, ErrNotLocal)
				n.inject(t, n.frameToB(udp4(n.a4, netip.MustParseAddr("198.19.9.9"), 1, testPort, []byte(knockTo("far")))))
				expectErr(t, ch, ErrNotLocal)
			}
			sendUDP(t, n.a, n.knock4, knockTo("marker"))
			expectKnock(t, ch, knockTo("marker"))
		})
	}
}

// TestIntegrationAcceptForeign: the conformance mutants' switch turns the
// own-address check off (and so breaks CLASSIC-4.4 on purpose).
func TestIntegrationAcceptForeign(t *testing.T) {
	n := newTestNet(t)
	c := open(t, n.b, Config{Interface: n.ifB(), KnockPort: testPort, AcceptForeign: true})
	ch := reader(t, c)
	foreign := n.onLink(99)
	n.inject(t, n.frameToB(udp4(n.a4, foreign, 1, testPort, []byte(knockTo("foreign")))))
	if p := expectKnock(t, ch, knockTo("foreign")); p.Dst != foreign {
		t.Errorf("Read = %+v", p)
	}
}

func TestIntegrationMacvlan(t *testing.T) {
	n := newTestNet(t)
	// Without arp_ignore b's veth would answer ARP for the macvlan's
	// address too, and knocks for it would arrive on the veth.
	must(t, "arp_ignore", n.b.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv4/conf/all/arp_ignore", []byte("1\n"), 0)
	}))
	mv, err := n.sim.MACVLAN(n.link.B)
	must(t, "macvlan", err)

	c := open(t, n.b, Config{Interface: mv.Name, KnockPort: testPort})
	if c.LinkType() != "ethernet" {
		t.Errorf("LinkType = %q", c.LinkType())
	}
	ch := reader(t, c)
	sendUDP(t, n.a, netip.AddrPortFrom(mv.Addr4, testPort), knockTo("mv"))
	if p := expectKnock(t, ch, knockTo("mv")); p.IfIndex != mv.IfIndex || p.Dst != mv.Addr4 {
		t.Errorf("Read = %+v", p)
	}
}

func TestIntegrationSocketMode(t *testing.T) {
	n := newTestNet(t)
	var dump syncBuffer
	c := open(t, n.b, Config{Interface: n.ifB(), Mode: ModeSocket, KnockPort: testPort, HexDump: &dump})
	if c.LinkType() != "udp socket" || c.LinkHeaderLen() != 0 {
		t.Errorf("LinkType, LinkHeaderLen = %q, %d", c.LinkType(), c.LinkHeaderLen())
	}
	ch := reader(t, c)
	sport := sendUDP(t, n.a, n.knock4, knockTo("s4"))
	p := expectKnock(t, ch, knockTo("s4"))
	if p.Src != n.a4 || p.Dst != n.b4 || p.SrcPort != sport || p.DstPort != testPort || p.IfIndex != n.link.B.IfIndex {
		t.Errorf("Read = %+v", p)
	}
	sport = sendUDP(t, n.a, n.knock6, knockTo("s6"))
	p = expectKnock(t, ch, knockTo("s6"))
	if p.Src != n.a6 || p.Dst != n.b6 || p.SrcPort != sport {
		t.Errorf("Read = %+v", p)
	}
	// The kernel filter works on the UDP socket too (CLASSIC-2.3, 2.6,
	// 4.3 for options and extension headers).
	src, dst := n.a4, n.b4
	sendUDP(t, n.a, n.knock4, "hello")
	sendUDP(t, n.a, n.knock6, knockTo("short")[:protocol.MinClassicLen-1])
	n.inject(t, n.frameToB(ipv4(src, dst, protoUDP, 0, []byte{1, 1, 1, 0}, l4(src, dst, protoUDP, 4000, testPort, 0, []byte(knockTo("opts"))))))
	src6, dst6 := n.a6, n.b6
	n.inject(t, n.frameToB(ipv6(src6, dst6, ipv6NextDestOpts, []byte{protoUDP, 0, 1, 4, 0, 0, 0, 0},
		l4(src6, dst6, protoUDP, 4000, testPort, 0, []byte(knockTo("dstopt"))))))
	sendUDP(t, n.a, n.knock4, knockTo("s-marker"))
	expectKnock(t, ch, knockTo("s-marker"))
	// The host knocking for itself comes over lo, whatever IP_PKTINFO
	// says: not considered (CLASSIC-4.4).
	sendUDP(t, n.b, n.knock4, knockTo("self4"))
	expectErr(t, ch, ErrNotLocal)
	sendUDP(t, n.b, n.knock6, knockTo("self6"))
	expectErr(t, ch, ErrNotLocal)
	if !strings.Contains(dump.String(), "link type udp socket") {
		t.Errorf("hex dump: %q", dump.String())
	}
}

// TestIntegrationBuffered: Buffered tells whether Read has a packet at
// hand, in the ring and on the socket.
func TestIntegrationBuffered(t *testing.T) {
	n := newTestNet(t)
	for _, mode := range []Mode{ModeNetwork, ModeSocket} {
		c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, KnockPort: testPort})
		watchdog := time.AfterFunc(opTimeout, func() { c.Close() })
		if c.Buffered() {
			t.Errorf("%v: Buffered before anything was sent", mode)
		}
		sendUDP(t, n.a, n.knock4, knockTo("buf1"))
		sendUDP(t, n.a, n.knock4, knockTo("buf2"))
		var p Packet
		must(t, "Read", c.Read(&p))
		// The second one came right behind the first.
		deadline := time.Now().Add(opTimeout)
		for !c.Buffered() && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !c.Buffered() {
			t.Errorf("%v: Buffered false with a knock waiting", mode)
		}
		must(t, "Read", c.Read(&p))
		if string(p.Payload) != knockTo("buf2") {
			t.Errorf("%v: second Read = %q", mode, p.Payload)
		}
		if c.Buffered() {
			t.Errorf("%v: Buffered true with nothing left", mode)
		}
		watchdog.Stop()
		c.Close()
		if c.Buffered() {
			t.Errorf("%v: Buffered true after Close", mode)
		}
	}
}

func TestIntegrationClose(t *testing.T) {
	n := newTestNet(t)
	for _, mode := range []Mode{ModeNetwork, ModeSocket} {
		c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, KnockPort: testPort})
		done := make(chan error, 1)
		go func() {
			var p Packet
			done <- c.Read(&p)
		}()
		time.Sleep(50 * time.Millisecond) // let Read block; correctness does not depend on it
		must(t, "Close", c.Close())
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("%v: Read after Close = %v, want net.ErrClosed", mode, err)
			}
		case <-time.After(opTimeout):
			t.Fatalf("%v: Close did not unblock Read", mode)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		var p Packet
		if err := c.Read(&p); !errors.Is(err, net.ErrClosed) {
			t.Errorf("%v: Read on a closed Conn = %v", mode, err)
		}
	}

	// Cancelling the context closes the Conn too.
	ctx, cancel := context.WithCancel(context.Background())
	var c2 *Conn
	must(t, "Open", n.b.Do(func() (err error) {
		c2, err = Open(ctx, Config{Interface: n.ifB(), KnockPort: testPort})
		return err
	}))
	t.Cleanup(func() { c2.Close() })
	cancel()
	var p Packet
	if err := c2.Read(&p); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Read after cancel = %v, want net.ErrClosed", err)
	}

	if _, err := openErr(t, n.b, Config{Interface: "dmcnosuch", KnockPort: testPort}); err == nil || !strings.Contains(err.Error(), "dmcnosuch") {
		t.Errorf("Open of a missing device: %v, want an error naming it", err)
	}
}

// TestIntegrationCloseWhileBusy: Close while Read walks a busy ring never
// touches unmapped memory (the test would crash), and the payload handed
// out stays readable after Close.
func TestIntegrationCloseWhileBusy(t *testing.T) {
	n := newTestNet(t)
	c := open(t, n.b, Config{Interface: n.ifB(), KnockPort: testPort})
	var conn *net.UDPConn
	must(t, "dial udp", n.a.Do(func() (err error) {
		conn, err = net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(n.knock4))
		return err
	}))
	defer conn.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		payload := []byte(knockTo("busy"))
		for i := 0; i < 200000; i++ { // bounded: a few hundred milliseconds
			select {
			case <-stop:
				return
			default:
			}
			conn.Write(payload)
		}
	}()
	var p Packet
	must(t, "Read", c.Read(&p))
	for range 1000 {
		if err := c.Read(&p); err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	c.Close()
	close(stop)
	wg.Wait()
	if !bytes.Equal(p.Payload, []byte(knockTo("busy"))) {
		t.Errorf("payload after Close = %q", p.Payload)
	}
}

func TestIntegrationReadAllocs(t *testing.T) {
	n := newTestNet(t)
	for _, mode := range []Mode{ModeNetwork, ModeRaw, ModeSocket} {
		c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, LinkHeaderLen: -1, KnockPort: testPort})
		const runs = 40
		// Should a knock be lost, Close ends the blocked Read and the test fails instead of hanging.
		watchdog := time.AfterFunc(opTimeout, func() { c.Close() })
		for i := range runs + 10 {
			sendUDP(t, n.a, n.knock4, knockTo(string(rune('a'+i%26))))
		}
		var p Packet
		must(t, "first Read", c.Read(&p)) // all are queued once the first is
		allocs := testing.AllocsPerRun(runs, func() {
			if err := c.Read(&p); err != nil {
				t.Errorf("Read: %v", err)
			}
		})
		watchdog.Stop()
		if allocs != 0 {
			t.Errorf("%v: Read allocates %v times per packet, want 0", mode, allocs)
		}
		c.Close()
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
