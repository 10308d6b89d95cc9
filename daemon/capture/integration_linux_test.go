//go:build linux

package capture

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	knock4 = netip.AddrPortFrom(addrB4.Addr(), testPort)
	knock6 = netip.AddrPortFrom(addrB6.Addr(), testPort)
)

// TestIntegrationNetworkMode: IPv4 and IPv6 knocks (CLASSIC-2.7); options
// and fragments are dropped (CLASSIC-4.3); only knocks to the interface's
// own addresses count (CLASSIC-4.4).
func TestIntegrationNetworkMode(t *testing.T) {
	n := newTestNet(t)
	c := open(t, n.b, Config{Interface: vethB, KnockPort: testPort, SYN: true})
	if c.LinkType() != "ethernet" || c.LinkHeaderLen() != 0 {
		t.Errorf("LinkType, LinkHeaderLen = %q, %d; want ethernet, 0", c.LinkType(), c.LinkHeaderLen())
	}
	ch := reader(t, c)
	bIdx := n.bLink.Attrs().Index

	t.Run("ipv4 knock", func(t *testing.T) {
		sport := sendUDP(t, n.a, knock4, knockTo("v4"))
		p := expectKnock(t, ch, knockTo("v4"))
		want := Packet{Src: addrA4.Addr(), Dst: addrB4.Addr(), SrcPort: sport, DstPort: testPort, Proto: ProtoUDP, IfIndex: bIdx}
		if p.Src != want.Src || p.Dst != want.Dst || p.SrcPort != want.SrcPort || p.DstPort != want.DstPort || p.Proto != want.Proto || p.IfIndex != want.IfIndex || p.TCPFlags != 0 {
			t.Errorf("Read = %+v, want %+v", p, want)
		}
		if !p.Src.Is4() {
			t.Errorf("Src %v is not in 4-byte form", p.Src)
		}
	})
	t.Run("ipv6 knock", func(t *testing.T) {
		sport := sendUDP(t, n.a, knock6, knockTo("v6"))
		p := expectKnock(t, ch, knockTo("v6"))
		if p.Src != addrA6.Addr() || p.Dst != addrB6.Addr() || p.SrcPort != sport || p.DstPort != testPort || p.IfIndex != bIdx {
			t.Errorf("Read = %+v", p)
		}
	})
	t.Run("other port not delivered", func(t *testing.T) {
		sendUDP(t, n.a, netip.AddrPortFrom(addrB4.Addr(), testPort+1), knockTo("other"))
		sendUDP(t, n.a, netip.AddrPortFrom(addrB6.Addr(), testPort+1), knockTo("other"))
		sendUDP(t, n.a, knock4, knockTo("marker"))
		expectKnock(t, ch, knockTo("marker"))
	})
	t.Run("tcp syn", func(t *testing.T) {
		dialTCP(t, n.a, netip.AddrPortFrom(addrB4.Addr(), 2222))
		r := next(t, ch)
		if r.err != nil || r.p.Proto != ProtoTCP || r.p.DstPort != 2222 || r.p.TCPFlags&(TCPFlagSYN|TCPFlagACK) != TCPFlagSYN || r.p.Dst != addrB4.Addr() || r.payload != "" {
			t.Fatalf("Read = %+v %v, want a SYN to port 2222", r.p, r.err)
		}
		dialTCP(t, n.a, netip.AddrPortFrom(addrB6.Addr(), 2223))
		if r := next(t, ch); r.err != nil || r.p.Proto != ProtoTCP || r.p.DstPort != 2223 || r.p.Src != addrA6.Addr() {
			t.Fatalf("Read = %+v %v, want an IPv6 SYN to port 2223", r.p, r.err)
		}
	})
	t.Run("ip options", func(t *testing.T) {
		src, dst := addrA4.Addr(), addrB4.Addr()
		pkt := ipv4(src, dst, ProtoUDP, 0, []byte{1, 1, 1, 0}, l4(src, dst, ProtoUDP, 4000, testPort, 0, []byte(knockTo("opts"))))
		n.inject(t, n.frameToB(-1, pkt))
		expectErr(t, ch, ErrIPOptions)
	})
	t.Run("fragment", func(t *testing.T) {
		src, dst := addrA4.Addr(), addrB4.Addr()
		// A first fragment with MF set that holds the whole knock: the
		// original accepted it because it read MF without byte swapping.
		pkt := ipv4(src, dst, ProtoUDP, ipv4FlagMF, nil, l4(src, dst, ProtoUDP, 4000, testPort, 0, []byte(knockTo("frag"))))
		n.inject(t, n.frameToB(-1, pkt))
		expectErr(t, ch, ErrFragment)
		// A later fragment: its port cannot be seen, still counted.
		n.inject(t, n.frameToB(-1, ipv4(src, dst, ProtoUDP, 0x0010, nil, []byte("tail of a datagram"))))
		expectErr(t, ch, ErrFragment)
	})
	t.Run("802.1Q tagged", func(t *testing.T) {
		src, dst := addrA4.Addr(), addrB4.Addr()
		n.inject(t, n.frameToB(100, udp4(src, dst, 4001, testPort, []byte(knockTo("vlan")))))
		p := expectKnock(t, ch, knockTo("vlan"))
		if p.SrcPort != 4001 || p.Dst != dst {
			t.Errorf("Read = %+v", p)
		}
	})
	t.Run("not local", func(t *testing.T) {
		other := netip.MustParseAddr("198.18.0.99")
		n.inject(t, n.frameToB(-1, udp4(addrA4.Addr(), other, 4002, testPort, []byte(knockTo("x")))))
		expectErr(t, ch, ErrNotLocal)
	})
	t.Run("address added later", func(t *testing.T) {
		added := netip.MustParsePrefix("198.18.0.50/32")
		must(t, "add address", n.hb.AddrAdd(n.bLink, addrOf(added)))
		for i := 0; ; i++ {
			n.inject(t, n.frameToB(-1, udp4(addrA4.Addr(), added.Addr(), 4003, testPort, []byte(knockTo("new")))))
			r := next(t, ch)
			if r.err == nil {
				if r.p.Dst != added.Addr() {
					t.Fatalf("Read = %+v", r.p)
				}
				break
			}
			if r.err != ErrNotLocal || i == 100 {
				t.Fatalf("knock to a new address: %v after %d tries", r.err, i+1)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestIntegrationRawMode(t *testing.T) {
	n := newTestNet(t)
	good := open(t, n.b, Config{Interface: vethB, Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	if good.LinkHeaderLen() != 14 || good.LinkType() != "ethernet" {
		t.Fatalf("guessed %q, %d; want ethernet, 14", good.LinkType(), good.LinkHeaderLen())
	}
	wrong := open(t, n.b, Config{Interface: vethB, Mode: ModeRaw, LinkHeaderLen: 18, KnockPort: testPort})
	if wrong.LinkHeaderLen() != 18 {
		t.Fatalf("configured length ignored: %d", wrong.LinkHeaderLen())
	}
	var dump syncBuffer
	diag := open(t, n.b, Config{Interface: vethB, Mode: ModeRaw, LinkHeaderLen: 18, KnockPort: testPort, HexDump: &dump})
	goodCh, wrongCh, diagCh := reader(t, good), reader(t, wrong), reader(t, diag)

	sendUDP(t, n.a, knock4, knockTo("raw4"))
	expectKnock(t, goodCh, knockTo("raw4"))
	sendUDP(t, n.a, knock6, knockTo("raw6"))
	expectKnock(t, goodCh, knockTo("raw6"))
	// The kernel removes an 802.1Q tag before packet sockets see the
	// frame: the header stays 14 bytes (libpcap would show 18).
	n.inject(t, n.frameToB(100, udp4(addrA4.Addr(), addrB4.Addr(), 4001, testPort, []byte(knockTo("rawvlan")))))
	expectKnock(t, goodCh, knockTo("rawvlan"))

	// With the wrong length the filter misses every knock. All three
	// sockets got their copies in the same softirq, so by now the wrong
	// one would have them queued; the diagnostic one shows them in its
	// dump while Read reports them as malformed.
	for range 3 {
		if r := next(t, diagCh); r.err == nil {
			t.Errorf("diagnostic conn with a wrong length delivered %+v", r.p)
		}
	}
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
		"lice raw4",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("hex dump lacks %q:\n%s", want, out)
		}
	}
}

func TestIntegrationTun(t *testing.T) {
	n := newTestNet(t)
	var tun *os.File
	inNS(t, n.b, func() {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Skipf("no tun device: %v", err)
		}
		tun = os.NewFile(uintptr(fd), "tun")
		ifr, err := unix.NewIfreq("dmcapt0")
		must(t, "ifreq", err)
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		must(t, "TUNSETIFF", unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr))
	})
	t.Cleanup(func() { tun.Close() })
	link, err := n.hb.LinkByName("dmcapt0")
	must(t, "find tun", err)
	local, peer := netip.MustParsePrefix("198.18.5.1/24"), netip.MustParseAddr("198.18.5.2")
	must(t, "tun address", n.hb.AddrAdd(link, addrOf(local)))
	must(t, "tun up", n.hb.LinkSetUp(link))

	cooked := open(t, n.b, Config{Interface: "dmcapt0", KnockPort: testPort})
	raw := open(t, n.b, Config{Interface: "dmcapt0", Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	if cooked.LinkType() != "none (raw IP)" || raw.LinkHeaderLen() != 0 {
		t.Fatalf("tun: %q, raw header %d; want none (raw IP), 0", cooked.LinkType(), raw.LinkHeaderLen())
	}
	cch, rch := reader(t, cooked), reader(t, raw)
	_, err = tun.Write(udp4(peer, local.Addr(), 5000, testPort, []byte(knockTo("tun"))))
	must(t, "write to tun", err)
	for _, ch := range []<-chan result{cch, rch} {
		p := expectKnock(t, ch, knockTo("tun"))
		if p.Src != peer || p.SrcPort != 5000 || p.IfIndex != link.Attrs().Index {
			t.Errorf("Read = %+v", p)
		}
	}
}

func TestIntegrationLoopback(t *testing.T) {
	n := newTestNet(t)
	cooked := open(t, n.b, Config{Interface: "lo", KnockPort: testPort})
	raw := open(t, n.b, Config{Interface: "lo", Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort})
	if cooked.LinkType() != "loopback" || raw.LinkHeaderLen() != 14 {
		t.Fatalf("lo: %q, raw header %d", cooked.LinkType(), raw.LinkHeaderLen())
	}
	cch, rch := reader(t, cooked), reader(t, raw)
	for _, dst := range []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.IPv6Loopback()} {
		// Two knocks in a row: the second Read must be the second knock,
		// not the first one seen again on its way out.
		sendUDP(t, n.b, netip.AddrPortFrom(dst, testPort), knockTo("lo1"))
		sendUDP(t, n.b, netip.AddrPortFrom(dst, testPort), knockTo("lo2"))
		for _, ch := range []<-chan result{cch, rch} {
			if p := expectKnock(t, ch, knockTo("lo1")); p.Dst != dst {
				t.Errorf("Dst = %v, want %v", p.Dst, dst)
			}
			expectKnock(t, ch, knockTo("lo2"))
		}
	}
}

func TestIntegrationAny(t *testing.T) {
	n := newTestNet(t)
	if _, err := openErr(t, n.b, Config{Interface: AnyInterface, Mode: ModeRaw, LinkHeaderLen: -1, KnockPort: testPort}); err == nil {
		t.Error("raw mode on any opened")
	}
	c := open(t, n.b, Config{Interface: AnyInterface, KnockPort: testPort})
	if c.LinkType() != "any (cooked)" {
		t.Errorf("LinkType = %q", c.LinkType())
	}
	ch := reader(t, c)
	sendUDP(t, n.a, knock4, knockTo("any4"))
	if p := expectKnock(t, ch, knockTo("any4")); p.IfIndex != n.bLink.Attrs().Index {
		t.Errorf("IfIndex = %d, want %d", p.IfIndex, n.bLink.Attrs().Index)
	}
	sendUDP(t, n.a, knock6, knockTo("any6"))
	expectKnock(t, ch, knockTo("any6"))
	sendUDP(t, n.b, netip.MustParseAddrPort("127.0.0.1:1001"), knockTo("anylo"))
	if p := expectKnock(t, ch, knockTo("anylo")); p.IfIndex != 1 {
		t.Errorf("loopback knock on ifindex %d", p.IfIndex)
	}
	// Any address of the namespace is local, that of another device too.
	n.inject(t, n.frameToB(-1, udp4(addrA4.Addr(), netip.MustParseAddr("127.0.0.1"), 1, testPort, []byte(knockTo("martian")))))
	if r := next(t, ch); r.err != nil {
		t.Errorf("knock to another local address: %v", r.err)
	}
	n.inject(t, n.frameToB(-1, udp4(addrA4.Addr(), netip.MustParseAddr("198.18.9.9"), 1, testPort, []byte(knockTo("far")))))
	expectErr(t, ch, ErrNotLocal)
}

func TestIntegrationMacvlan(t *testing.T) {
	n := newTestNet(t)
	mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: "dmcm0", ParentIndex: n.bLink.Attrs().Index}, Mode: netlink.MACVLAN_MODE_BRIDGE}
	must(t, "add macvlan", n.hb.LinkAdd(mv))
	link, err := n.hb.LinkByName("dmcm0")
	must(t, "find macvlan", err)
	addr := netip.MustParsePrefix("198.18.0.3/24")
	must(t, "macvlan address", n.hb.AddrAdd(link, addrOf(addr)))
	must(t, "macvlan up", n.hb.LinkSetUp(link))
	n.neigh(t, n.ha, n.aLink, addr.Addr(), link.Attrs().HardwareAddr)

	c := open(t, n.b, Config{Interface: "dmcm0", KnockPort: testPort})
	if c.LinkType() != "ethernet" {
		t.Errorf("LinkType = %q", c.LinkType())
	}
	ch := reader(t, c)
	sendUDP(t, n.a, netip.AddrPortFrom(addr.Addr(), testPort), knockTo("mv"))
	if p := expectKnock(t, ch, knockTo("mv")); p.IfIndex != link.Attrs().Index || p.Dst != addr.Addr() {
		t.Errorf("Read = %+v", p)
	}
}

func TestIntegrationSocketMode(t *testing.T) {
	n := newTestNet(t)
	if _, err := openErr(t, n.b, Config{Interface: vethB, Mode: ModeSocket, KnockPort: testPort, SYN: true}); err == nil {
		t.Error("socket mode with SYN opened")
	}
	var dump syncBuffer
	c := open(t, n.b, Config{Interface: vethB, Mode: ModeSocket, KnockPort: testPort, HexDump: &dump})
	if c.LinkType() != "udp socket" || c.LinkHeaderLen() != 0 {
		t.Errorf("LinkType, LinkHeaderLen = %q, %d", c.LinkType(), c.LinkHeaderLen())
	}
	ch := reader(t, c)
	sport := sendUDP(t, n.a, knock4, knockTo("s4"))
	p := expectKnock(t, ch, knockTo("s4"))
	if p.Src != addrA4.Addr() || p.Dst != addrB4.Addr() || p.SrcPort != sport || p.DstPort != testPort || p.Proto != ProtoUDP || p.IfIndex != n.bLink.Attrs().Index {
		t.Errorf("Read = %+v", p)
	}
	sport = sendUDP(t, n.a, knock6, knockTo("s6"))
	p = expectKnock(t, ch, knockTo("s6"))
	if p.Src != addrA6.Addr() || p.Dst != addrB6.Addr() || p.SrcPort != sport {
		t.Errorf("Read = %+v", p)
	}
	if !strings.Contains(dump.String(), "link type udp socket") {
		t.Errorf("hex dump: %q", dump.String())
	}
}

func TestIntegrationClose(t *testing.T) {
	n := newTestNet(t)
	c := open(t, n.b, Config{Interface: vethB, KnockPort: testPort})
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
			t.Errorf("Read after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(opTimeout):
		t.Fatal("Close did not unblock Read")
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	// Cancelling the context closes the Conn too.
	ctx, cancel := context.WithCancel(context.Background())
	var c2 *Conn
	var err error
	inNS(t, n.b, func() { c2, err = Open(ctx, Config{Interface: vethB, KnockPort: testPort}) })
	must(t, "Open", err)
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

func TestIntegrationReadAllocs(t *testing.T) {
	n := newTestNet(t)
	for _, mode := range []Mode{ModeNetwork, ModeSocket} {
		c := open(t, n.b, Config{Interface: vethB, Mode: mode, KnockPort: testPort})
		const runs = 40
		// Should a knock be lost, Close ends the blocked Read and the test fails instead of hanging.
		watchdog := time.AfterFunc(opTimeout, func() { c.Close() })
		for i := range runs + 10 {
			sendUDP(t, n.a, knock4, knockTo(string(rune('a'+i%26))))
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
