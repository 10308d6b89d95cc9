//go:build linux

package netsim

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

func TestIntegrationSetLoss(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := startEcho(t, b, l.B.Addr4)
	if _, err := roundTrip(t, a, s.addr(), 5, time.Second); err != nil {
		t.Fatalf("before loss: %v", err)
	}
	if err := l.SetLoss(100); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(t, a, s.addr(), 3, 200*time.Millisecond); err == nil {
		t.Fatal("datagrams crossed a link with 100% loss")
	}
	if err := l.SetLoss(0); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(t, a, s.addr(), 5, time.Second); err != nil {
		t.Fatalf("after SetLoss(0): %v", err)
	}
	// 50% at b's end only: the numgen comparison must let some through and
	// drop some. Bounds are many standard deviations wide.
	if err := l.B.SetLoss(50); err != nil {
		t.Fatal(err)
	}
	got := blast(t, a, b, l.B.Addr4, 200, 0)
	if got < 40 || got > 160 {
		t.Errorf("50%% loss delivered %d of 200", got)
	}
}

// blast sends count numbered datagrams from a to dst in b and returns how
// many datagrams arrived (duplicates counted), waiting until quiet.
func blast(t *testing.T, a, b *Host, dst netip.Addr, count int, gap time.Duration) int {
	t.Helper()
	rx := listenUDP(t, b, dst)
	tx := listenUDP(t, a, netip.IPv4Unspecified())
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	if dst.Is6() {
		tx = listenUDP(t, a, netip.IPv6Unspecified())
	}
	for i := range count {
		if _, err := tx.WriteToUDPAddrPort(fmt.Appendf(nil, "n%d", i), to); err != nil {
			t.Fatal(err)
		}
		if gap > 0 {
			time.Sleep(gap)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
			return got
		}
		got++
	}
}

func TestIntegrationRelayDelay(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	const delay = 50 * time.Millisecond
	l, err := n.Link(a, b, LinkOptions{Delay: delay})
	if err != nil {
		t.Fatal(err)
	}
	if !l.Relayed || len(l.A.MAC) != 6 {
		t.Fatalf("expected a relayed Ethernet link: %+v", l.A)
	}
	s := startEcho(t, b, l.B.Addr4)
	if _, err := roundTrip(t, a, s.addr(), 5, time.Second); err != nil { // resolves ARP
		t.Fatal(err)
	}
	rtt, err := roundTrip(t, a, s.addr(), 5, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if rtt < 2*delay {
		t.Errorf("round trip %v over a %v link, want ≥ %v", rtt, delay, 2*delay)
	}
	s6 := startEcho(t, b, l.B.Addr6)
	if _, err := roundTrip(t, a, s6.addr(), 5, time.Second); err != nil {
		t.Errorf("IPv6 over relayed link: %v", err)
	}
	// Loss on a relayed link is done by the relay.
	if err := l.SetLoss(100); err != nil {
		t.Fatal(err)
	}
	if _, err := roundTrip(t, a, s.addr(), 2, 300*time.Millisecond); err == nil {
		t.Error("datagrams crossed a relayed link with 100% loss")
	}
	if st := l.Stats(); st.Lost == 0 || st.Forwarded == 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIntegrationRelayDuplicate(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{Duplicate: 100})
	if err != nil {
		t.Fatal(err)
	}
	// Resolve ARP first so no datagram waits in the neighbour queue.
	s := startEcho(t, b, l.B.Addr4)
	if _, err := roundTrip(t, a, s.addr(), 5, time.Second); err != nil {
		t.Fatal(err)
	}
	const count = 20
	if got := blast(t, a, b, l.B.Addr4, count, time.Millisecond); got != 2*count {
		t.Errorf("received %d datagrams for %d sent with 100%% duplication, want %d", got, count, 2*count)
	}
}

func TestIntegrationRelayReorder(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.TunLink(a, b, LinkOptions{Delay: 30 * time.Millisecond, Reorder: 50})
	if err != nil {
		t.Fatal(err)
	}
	rx := listenUDP(t, b, l.B.Addr4)
	tx := listenUDP(t, a, netip.IPv4Unspecified())
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	const count = 40
	for i := range count {
		if _, err := tx.WriteToUDPAddrPort([]byte{byte(i)}, to); err != nil {
			t.Fatal(err)
		}
	}
	var order []int
	buf := make([]byte, 16)
	for len(order) < count {
		rx.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil || n != 1 {
			t.Fatalf("after %d datagrams: %v", len(order), err)
		}
		order = append(order, int(buf[0]))
	}
	inversions := 0
	for i := 1; i < len(order); i++ {
		if order[i] < order[i-1] {
			inversions++
		}
	}
	if inversions == 0 {
		t.Errorf("no reordering with Reorder 50: %v", order)
	}
}
