//go:build linux

package netsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"
)

func TestIntegrationLink(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []*LinkEnd{l.A, l.B} {
		inPrefix(t, e.Name+" v4", e.Addr4, "198.18.0.0/15")
		inPrefix(t, e.Name+" v6", e.Addr6, "2001:db8::/32")
		if len(e.Name) > 15 || e.IfIndex <= 0 || len(e.MAC) != 6 {
			t.Errorf("bad end %+v", e)
		}
	}
	if a.Addr4() != l.A.Addr4 || b.Addr6() != l.B.Addr6 {
		t.Errorf("primary addresses %v %v, want %v %v", a.Addr4(), b.Addr6(), l.A.Addr4, l.B.Addr6)
	}
	if l.A.Peer() != l.B || l.Relayed {
		t.Errorf("peer/relayed wrong")
	}
	reach(t, a, b, l.B.Addr4)
	reach(t, a, b, l.B.Addr6)
	reach(t, b, a, l.A.Addr4)
	reach(t, b, a, l.A.Addr6)
}

func TestIntegrationLAN(t *testing.T) {
	n := newNet(t)
	hs := []*Host{mustHost(t, n, "h1"), mustHost(t, n, "h2"), mustHost(t, n, "h3")}
	lan, err := n.LAN("office", hs...)
	if err != nil {
		t.Fatal(err)
	}
	if len(lan.Ends()) != 3 {
		t.Fatalf("ends = %d", len(lan.Ends()))
	}
	for _, c := range hs {
		for _, s := range hs {
			if c != s {
				reach(t, c, s, lan.End(s).Addr4)
			}
		}
	}
	reach(t, hs[0], hs[2], lan.End(hs[2]).Addr6)
	if left := hosts(n); len(left) != 4 { // probe + 3; the switch is hidden
		t.Errorf("visible hosts = %v", left)
	}
}

// TestIntegrationChosenNames checks that LAN.AttachAs and LinkOptions'
// names are the interfaces' names inside the hosts, that automatic names
// carry on around them, and that a bad name is refused before anything is
// built.
func TestIntegrationChosenNames(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	lan, err := n.LAN("office")
	if err != nil {
		t.Fatal(err)
	}
	ea, err := lan.AttachAs(a, "lan0")
	if err != nil {
		t.Fatal(err)
	}
	eb, err := lan.Attach(b)
	if err != nil {
		t.Fatal(err)
	}
	l, err := n.Link(a, b, LinkOptions{NameA: "side1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		e    *LinkEnd
		want string
	}{{ea, "lan0"}, {eb, "eth0"}, {l.A, "side1"}, {l.B, "eth1"}} {
		if c.e.Name != c.want {
			t.Errorf("%s end named %q, want %q", c.e.Host.Name(), c.e.Name, c.want)
		}
		err := c.e.Host.Do(func() error {
			ifi, err := net.InterfaceByName(c.want)
			if err == nil && ifi.Index != c.e.IfIndex {
				err = fmt.Errorf("index %d, want %d", ifi.Index, c.e.IfIndex)
			}
			return err
		})
		if err != nil {
			t.Errorf("%s in %s: %v", c.want, c.e.Host.Name(), err)
		}
	}
	reach(t, b, a, ea.Addr4)
	reach(t, b, a, l.A.Addr6)

	if _, err := lan.AttachAs(b, "bad name"); !errors.Is(err, ErrBadName) {
		t.Errorf("AttachAs with a bad name: %v, want ErrBadName", err)
	}
	if _, err := n.Link(a, b, LinkOptions{NameB: "waytoolonginterface"}); !errors.Is(err, ErrBadName) {
		t.Errorf("Link with a bad name: %v, want ErrBadName", err)
	}
	if _, err := n.TunLink(a, b, LinkOptions{NameA: "0tun"}); !errors.Is(err, ErrBadName) {
		t.Errorf("TunLink with a bad name: %v, want ErrBadName", err)
	}
	if _, err := lan.AttachAs(b, "eth0"); err == nil {
		t.Error("AttachAs with a name in use in the host succeeded")
	}
	// The refused names took no subnet: the next link gets the third.
	l2, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := l2.A.Prefix4, netip.MustParsePrefix("198.18.3.0/24"); got != want {
		t.Errorf("next link's subnet %v, want %v", got, want)
	}
}

func hosts(n *Net) []string {
	var s []string
	for _, h := range n.Hosts() {
		s = append(s, h.Name())
	}
	return s
}

func TestIntegrationTunLink(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.TunLink(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Relayed || l.A.MAC != nil || !strings.HasPrefix(l.A.Name, "tun") {
		t.Errorf("not a tun link: %+v", l.A)
	}
	if l.A.Prefix4 != netip.PrefixFrom(l.B.Addr4, 32) {
		t.Errorf("A.Prefix4 = %v, want peer %v/32", l.A.Prefix4, l.B.Addr4)
	}
	reach(t, a, b, l.B.Addr4)
	reach(t, b, a, l.A.Addr6)
	if l.Stats().Forwarded < 4 {
		t.Errorf("relay stats %+v", l.Stats())
	}
}

func TestIntegrationRouter(t *testing.T) {
	n := newNet(t)
	h1, h2, out := mustHost(t, n, "h1"), mustHost(t, n, "h2"), mustHost(t, n, "out")
	lan, err := n.LAN("home", h1, h2)
	if err != nil {
		t.Fatal(err)
	}
	r, err := n.Router("gw", lan, out)
	if err != nil {
		t.Fatal(err)
	}
	h3 := mustHost(t, n, "h3") // joins after the router: still gets the route
	if _, err := lan.Attach(h3); err != nil {
		t.Fatal(err)
	}
	for _, h := range []*Host{h1, h3} {
		s := startEcho(t, out, out.Addr4())
		if _, err := roundTrip(t, h, s.addr(), 5, time.Second); err != nil {
			t.Fatalf("%s behind NAT → outside: %v", h.Name(), err)
		}
		for _, src := range s.sources() {
			if src.Addr() != r.Addr4() {
				t.Errorf("outside saw source %v, want router's %v", src.Addr(), r.Addr4())
			}
		}
	}
	s6 := startEcho(t, out, out.Addr6())
	if _, err := roundTrip(t, h2, s6.addr(), 5, time.Second); err != nil {
		t.Fatalf("IPv6 behind NAT: %v", err)
	}
	if src := s6.sources(); len(src) == 0 || src[0].Addr() != r.Addr6() {
		t.Errorf("IPv6 sources %v, want %v", src, r.Addr6())
	}
	// Unsolicited traffic from outside must not get in, even with a route.
	if err := out.AddRoute(lan.Prefix4(), r.Addr4()); err != nil {
		t.Fatal(err)
	}
	in := startEcho(t, h1, lan.End(h1).Addr4)
	if _, err := roundTrip(t, out, in.addr(), 2, 300*time.Millisecond); err == nil {
		t.Errorf("outside reached an inside host through the NAT router")
	}
}

func TestIntegrationMACVLAN(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	mv, err := n.MACVLAN(l.A)
	if err != nil {
		t.Fatal(err)
	}
	if mv.Host != a || !l.A.Prefix4.Contains(mv.Addr4) || mv.Addr4 == l.A.Addr4 {
		t.Fatalf("macvlan end %+v", mv)
	}
	reach(t, b, a, mv.Addr4)
}

func TestIntegrationCommand(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, err := a.Command(t.Context(), "ip", "-o", "addr", "show", "dev", l.A.Name).CombinedOutput()
	if err != nil {
		t.Fatalf("ip addr: %v: %s", err, out)
	}
	if !strings.Contains(string(out), l.A.Addr4.String()) {
		t.Errorf("ip addr in %s does not show %v:\n%s", a.NS(), l.A.Addr4, out)
	}
	// A command still running at Close is killed.
	sleep := b.Command(context.Background(), "sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- sleep.Wait() }()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not kill the running command")
	}
}

func TestIntegrationDoRestoresNamespace(t *testing.T) {
	n := newNet(t)
	a := mustHost(t, n, "a")
	for range 20 {
		var inside []net.Interface
		if err := a.Do(func() error {
			var err error
			inside, err = net.Interfaces()
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(inside) != 1 || inside[0].Name != "lo" {
			t.Fatalf("interfaces in a fresh host: %v", inside)
		}
	}
	// Every thread of the process is back in the process's namespace.
	root, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink("/proc/self/task/" + task.Name() + "/ns/net")
		if err == nil && ns != root {
			t.Errorf("thread %s left in %s (root %s)", task.Name(), ns, root)
		}
	}
}
