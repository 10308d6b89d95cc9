//go:build linux

package netsim

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// TestIntegrationInterfaceChanges: an end goes down and up, addresses come
// and go, a link is deleted and re-created under the same names.
func TestIntegrationInterfaceChanges(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b6 := netip.PrefixFrom(l.B.Addr6, l.B.Prefix6.Bits())

	if err := l.B.SetUp(false); err != nil {
		t.Fatal(err)
	}
	if up, err := l.B.operUp(); err != nil || up {
		t.Fatalf("after SetUp(false): up %v, %v", up, err)
	}
	if err := l.B.SetUp(true); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*LinkEnd{l.A, l.B} {
		if up, err := e.operUp(); err != nil || !up {
			t.Fatalf("%s after SetUp(true): up %v, %v", e.Host.Name(), up, err)
		}
	}
	reach(t, a, b, l.B.Addr4)
	if hasAddr(t, b, l.B.Name, l.B.Addr6) {
		t.Errorf("%v survived down and up; the kernel flushes IPv6 addresses", l.B.Addr6)
	}
	if err := b.AddAddr(l.B.Name, b6); err != nil {
		t.Fatal(err)
	}
	reach(t, a, b, l.B.Addr6)

	extra := netip.MustParsePrefix("198.19.255.1/32")
	if err := b.AddAddr("lo", extra); err != nil {
		t.Fatal(err)
	}
	if !isLocal(t, b, extra.Addr()) {
		t.Errorf("%v not local after AddAddr", extra)
	}
	if err := b.DelAddr("lo", extra); err != nil {
		t.Fatal(err)
	}
	if isLocal(t, b, extra.Addr()) || hasAddr(t, b, "lo", extra.Addr()) {
		t.Errorf("%v still there after DelAddr", extra)
	}
	for _, p := range []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("2001:db9::1/64"), {}} {
		if err := b.AddAddr("lo", p); err == nil {
			t.Errorf("AddAddr(%v) outside the test ranges succeeded", p)
		}
	}
	if err := b.AddAddr("nosuch0", extra); err == nil {
		t.Error("AddAddr on a missing interface succeeded")
	}

	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	for _, e := range []*LinkEnd{l.A, l.B} {
		if _, err := e.Host.nl.LinkByName(e.Name); err == nil {
			t.Errorf("%s still in %s after Delete", e.Name, e.Host.Name())
		}
	}
	nl, err := l.Recreate()
	if err != nil {
		t.Fatal(err)
	}
	if nl.A.Name != l.A.Name || nl.B.Name != l.B.Name || nl.A.Addr4 != l.A.Addr4 || nl.B.Addr6 != l.B.Addr6 || nl.B.Prefix4 != l.B.Prefix4 {
		t.Errorf("re-created ends %+v %+v, want the names and addresses of %+v %+v", nl.A, nl.B, l.A, l.B)
	}
	if nl.B.IfIndex == l.B.IfIndex || nl.B.Peer() != nl.A {
		t.Errorf("re-created B: index %d (was %d), peer %v", nl.B.IfIndex, l.B.IfIndex, nl.B.Peer())
	}
	reach(t, a, b, nl.B.Addr4)
	reach(t, b, a, nl.A.Addr6)

	tl, err := n.TunLink(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := tl.Delete(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Delete of a tun link: %v, want ErrUnsupported", err)
	}
	if _, err := tl.Recreate(); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Recreate of a tun link: %v, want ErrUnsupported", err)
	}
}

func hasAddr(t *testing.T, h *Host, ifname string, a netip.Addr) bool {
	t.Helper()
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := h.nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range addrs {
		if got, ok := netip.AddrFromSlice(x.IP); ok && got.Unmap() == a {
			return true
		}
	}
	return false
}

func isLocal(t *testing.T, h *Host, a netip.Addr) bool {
	t.Helper()
	rs, err := h.nl.RouteGet(a.AsSlice())
	return err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL
}
