//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// testNet is two network namespaces, A (the knocker) and B (the doorman),
// joined by a veth pair:
//
//	ns A: dmca0 198.18.0.1/24 2001:db8::1/64 <--veth--> dmcb0 198.18.0.2/24 2001:db8::2/64 :ns B
//
// Neighbours are static so no test waits for ARP or ND.
type testNet struct {
	suffix       string // the namespaces are dmcap-<suffix>-a and -b
	a, b         netns.NsHandle
	ha, hb       *netlink.Handle
	aLink, bLink netlink.Link
}

const (
	vethA     = "dmca0"
	vethB     = "dmcb0"
	opTimeout = 10 * time.Second
)

var (
	addrA4 = netip.MustParsePrefix("198.18.0.1/24")
	addrB4 = netip.MustParsePrefix("198.18.0.2/24")
	addrA6 = netip.MustParsePrefix("2001:db8::1/64")
	addrB6 = netip.MustParsePrefix("2001:db8::2/64")
)

// newNamespace creates a named namespace dmcap-<suffix>-<role> and removes
// it when the test ends. It skips the test when namespaces cannot be made.
func newNamespace(t testing.TB, suffix, role string) netns.NsHandle {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("integration test: needs root to create network namespaces")
	}
	name := fmt.Sprintf("dmcap-%s-%s", suffix, role)
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current namespace: %v", err)
	}
	defer orig.Close()
	ns, err := netns.NewNamed(name)
	if serr := netns.Set(orig); serr != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other code in the wrong namespace.
		t.Fatalf("restore namespace: %v", serr)
	}
	runtime.UnlockOSThread()
	if errors.Is(err, unix.EPERM) {
		t.Skipf("integration test: cannot create a network namespace: %v", err)
	}
	if err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
	t.Cleanup(func() {
		ns.Close()
		if err := netns.DeleteNamed(name); err != nil {
			t.Errorf("delete namespace %s: %v", name, err)
		}
	})
	return ns
}

// inNS runs f on a thread switched into ns. Sockets f creates stay in ns.
func inNS(t testing.TB, ns netns.NsHandle, f func()) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("get current namespace: %v", err)
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		t.Fatalf("enter namespace: %v", err)
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			t.Errorf("restore namespace: %v", err)
			return // keep the thread locked; it is discarded
		}
		runtime.UnlockOSThread()
	}()
	f()
}

func must(t testing.TB, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func addrOf(p netip.Prefix) *netlink.Addr {
	return &netlink.Addr{
		IPNet: &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		Flags: unix.IFA_F_NODAD,
	}
}

func newTestNet(t testing.TB) *testNet {
	t.Helper()
	suffix := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	n := &testNet{suffix: suffix, a: newNamespace(t, suffix, "a"), b: newNamespace(t, suffix, "b")}
	var err error
	n.ha, err = netlink.NewHandleAt(n.a)
	must(t, "netlink handle A", err)
	t.Cleanup(n.ha.Close)
	n.hb, err = netlink.NewHandleAt(n.b)
	must(t, "netlink handle B", err)
	t.Cleanup(n.hb.Close)
	for _, h := range []*netlink.Handle{n.ha, n.hb} {
		lo, err := h.LinkByName("lo")
		must(t, "find lo", err)
		must(t, "lo up", h.LinkSetUp(lo))
	}
	n.connect(t)
	return n
}

// connect creates the veth pair between A and B with its addresses and
// neighbours, and waits until both ends carry traffic.
func (n *testNet) connect(t testing.TB) {
	t.Helper()
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: vethA}, PeerName: vethB, PeerNamespace: netlink.NsFd(int(n.b))}
	must(t, "add veth", n.ha.LinkAdd(veth))
	var err error
	n.aLink, err = n.ha.LinkByName(vethA)
	must(t, "find veth A", err)
	n.bLink, err = n.hb.LinkByName(vethB)
	must(t, "find veth B", err)
	for _, s := range []struct {
		h     *netlink.Handle
		link  netlink.Link
		addrs []netip.Prefix
	}{{n.ha, n.aLink, []netip.Prefix{addrA4, addrA6}}, {n.hb, n.bLink, []netip.Prefix{addrB4, addrB6}}} {
		for _, p := range s.addrs {
			must(t, "add address", s.h.AddrAdd(s.link, addrOf(p)))
		}
		must(t, "link up", s.h.LinkSetUp(s.link))
	}
	n.waitReady(t)
}

// waitReady waits until the veth pair carries traffic both ways and sets
// the static neighbours.
func (n *testNet) waitReady(t testing.TB) {
	t.Helper()
	// A veth end brought up before its peer gets its qdisc only when the
	// kernel's link watcher runs (up to a second later); until then it
	// drops what it sends. Wait for both ends to be operationally up.
	waitOperUp(t, n.ha, vethA)
	waitOperUp(t, n.hb, vethB)
	// IPv6 addresses (even NODAD ones) get their local route from a
	// kernel work item; until then B's stack drops IPv6 knocks.
	waitLocal(t, n.hb, addrB6.Addr())
	n.neigh(t, n.ha, n.aLink, addrB4.Addr(), n.bLink.Attrs().HardwareAddr)
	n.neigh(t, n.ha, n.aLink, addrB6.Addr(), n.bLink.Attrs().HardwareAddr)
	n.neigh(t, n.hb, n.bLink, addrA4.Addr(), n.aLink.Attrs().HardwareAddr)
	n.neigh(t, n.hb, n.bLink, addrA6.Addr(), n.aLink.Attrs().HardwareAddr)
}

// waitOperUp waits until a link's operational state is up.
func waitOperUp(t testing.TB, h *netlink.Handle, name string) {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for {
		l, err := h.LinkByName(name)
		must(t, "find link", err)
		if l.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is not up: %v", name, l.Attrs().OperState)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitLocal waits until ip is routed as a local address.
func waitLocal(t testing.TB, h *netlink.Handle, ip netip.Addr) {
	t.Helper()
	deadline := time.Now().Add(opTimeout)
	for {
		rs, err := h.RouteGet(ip.AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v is not a local address: %v %v", ip, rs, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// neigh adds a permanent neighbour entry.
func (n *testNet) neigh(t testing.TB, h *netlink.Handle, link netlink.Link, ip netip.Addr, mac net.HardwareAddr) {
	t.Helper()
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	must(t, "add neighbour", h.NeighSet(&netlink.Neigh{
		LinkIndex: link.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
		IP: ip.AsSlice(), HardwareAddr: mac,
	}))
}

// open opens a Conn inside ns and closes it when the test ends.
func open(t testing.TB, ns netns.NsHandle, cfg Config) *Conn {
	t.Helper()
	c, err := openErr(t, ns, cfg)
	must(t, "Open", err)
	return c
}

func openErr(t testing.TB, ns netns.NsHandle, cfg Config) (*Conn, error) {
	t.Helper()
	var (
		c   *Conn
		err error
	)
	inNS(t, ns, func() { c, err = Open(context.Background(), cfg) })
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// sendUDP sends one datagram from ns and returns the source port used.
func sendUDP(t testing.TB, ns netns.NsHandle, dst netip.AddrPort, payload string) uint16 {
	t.Helper()
	var port uint16
	inNS(t, ns, func() {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
		must(t, "dial udp", err)
		defer c.Close()
		_, err = c.Write([]byte(payload))
		must(t, "send udp", err)
		port = uint16(c.LocalAddr().(*net.UDPAddr).Port)
	})
	return port
}

// dialTCP starts a TCP connection from ns (the port is closed, so one SYN
// goes out and a RST comes back).
func dialTCP(t testing.TB, ns netns.NsHandle, dst netip.AddrPort) {
	t.Helper()
	inNS(t, ns, func() {
		d := net.Dialer{Timeout: 2 * time.Second}
		if c, err := d.Dial("tcp", dst.String()); err == nil {
			c.Close()
		}
	})
}

// inject sends a raw Ethernet frame out of A's veth.
func (n *testNet) inject(t testing.TB, frame []byte) {
	t.Helper()
	inNS(t, n.a, func() {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		must(t, "packet socket", err)
		defer unix.Close(fd)
		sll := &unix.SockaddrLinklayer{Ifindex: n.aLink.Attrs().Index, Halen: 6}
		copy(sll.Addr[:], n.bLink.Attrs().HardwareAddr)
		must(t, "inject frame", unix.Sendto(fd, frame, 0, sll))
	})
}

// frameToB wraps an IP packet in an Ethernet header from A to B.
func (n *testNet) frameToB(vlan int, pkt []byte) []byte {
	et := uint16(etherTypeIPv4)
	if pkt[0]>>4 == 6 {
		et = etherTypeIPv6
	}
	return ether([6]byte(n.bLink.Attrs().HardwareAddr), [6]byte(n.aLink.Attrs().HardwareAddr), vlan, et, pkt)
}

// result is one Read outcome with the payload copied.
type result struct {
	p       Packet
	payload string
	err     error
}

// reader reads c in a goroutine until a fatal error and hands every
// outcome (sentinels included) to the returned channel.
func reader(t testing.TB, c *Conn) <-chan result {
	ch := make(chan result, 64)
	go func() {
		defer close(ch)
		for {
			var p Packet
			err := c.Read(&p)
			r := result{p: p, payload: string(p.Payload), err: err}
			r.p.Payload = nil
			ch <- r
			if err != nil && !isSentinel(err) {
				return
			}
		}
	}()
	return ch
}

func isSentinel(err error) bool {
	for _, s := range []error{ErrTruncated, ErrIPOptions, ErrFragment, ErrChecksum, ErrMartian, ErrNotLocal, ErrNotCandidate} {
		if err == s {
			return true
		}
	}
	return false
}

// next waits for the next Read outcome.
func next(t testing.TB, ch <-chan result) result {
	t.Helper()
	select {
	case r, ok := <-ch:
		if !ok {
			t.Fatal("reader ended")
		}
		return r
	case <-time.After(opTimeout):
		t.Fatal("no packet within the time limit")
	}
	return result{}
}

// expectKnock waits for the next outcome and checks it is a knock with
// the given payload.
func expectKnock(t testing.TB, ch <-chan result, payload string) Packet {
	t.Helper()
	r := next(t, ch)
	if r.err != nil {
		t.Fatalf("Read: %v, want the knock %q", r.err, payload)
	}
	if r.payload != payload {
		t.Fatalf("Read delivered %+v payload %q, want payload %q", r.p, r.payload, payload)
	}
	return r.p
}

func expectErr(t testing.TB, ch <-chan result, want error) {
	t.Helper()
	if r := next(t, ch); r.err != want {
		t.Fatalf("Read: %+v %q err %v, want %v", r.p, r.payload, r.err, want)
	}
}

// knockTo returns a unique payload for one knock, shaped like a classic
// knock so that the kernel prefilter passes it: tag (up to 10 characters)
// stands in the tag field.
func knockTo(tag string) string {
	return "2222 alice " + strings.Repeat("0", max(0, 10-len(tag))) + tag + " " + strings.Repeat("0", 32)
}
