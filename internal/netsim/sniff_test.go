//go:build linux

package netsim

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

func TestUDPPacket(t *testing.T) {
	for _, c := range []struct{ src, dst string }{
		{"198.18.1.1:40000", "198.18.1.2:1001"},
		{"[2001:db8:0:1::1]:40000", "[2001:db8:0:1::2]:1001"},
	} {
		src, dst := netip.MustParseAddrPort(c.src), netip.MustParseAddrPort(c.dst)
		pkt, err := UDPPacket(src, dst, []byte("payload"))
		if err != nil {
			t.Fatal(err)
		}
		first := layers.LayerTypeIPv4
		if src.Addr().Is6() {
			first = layers.LayerTypeIPv6
		}
		p := gopacket.NewPacket(pkt, first, gopacket.Default)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil || int(udp.SrcPort) != int(src.Port()) || int(udp.DstPort) != int(dst.Port()) ||
			!bytes.Equal(udp.Payload, []byte("payload")) || int(udp.Length) != 8+len("payload") {
			t.Errorf("%s: decoded %v", c.src, p)
		}
	}
	if _, err := UDPPacket(netip.MustParseAddrPort("198.18.1.1:1"), netip.MustParseAddrPort("[2001:db8::1]:1"), nil); err == nil {
		t.Error("mixed families accepted")
	}
}

// TestIntegrationSniffSpoof: a datagram with a spoofed source reaches a
// socket on the other host (so its checksums are right), and a sniffer on
// that host's interface sees it with both MAC addresses.
func TestIntegrationSniffSpoof(t *testing.T) {
	n := newNet(t)
	a, b := mustHost(t, n, "a"), mustHost(t, n, "b")
	l, err := n.Link(a, b, LinkOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rx := listenUDP(t, b, l.B.Addr4)
	sn, err := l.B.Sniff()
	if err != nil {
		t.Fatal(err)
	}
	defer sn.Close()
	spoofed := netip.AddrPortFrom(netip.MustParseAddr("198.18.1.99"), 4242)
	dst := netip.AddrPortFrom(l.B.Addr4, rx.LocalAddr().(interface{ AddrPort() netip.AddrPort }).AddrPort().Port())
	if err := a.SendSpoofedUDP(spoofed, dst, []byte("spoof")); err != nil {
		t.Fatal(err)
	}
	u, err := sn.UDP(spoofed.Addr(), dst.Addr(), dst.Port(), 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if u.Src != spoofed || !bytes.Equal(u.Payload, []byte("spoof")) || !bytes.Equal(u.SrcMAC, l.A.MAC) || !bytes.Equal(u.DstMAC, l.B.MAC) {
		t.Errorf("sniffed %+v", u)
	}
	rx.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 64)
	k, from, err := rx.ReadFromUDPAddrPort(buf)
	if err != nil || from != spoofed || string(buf[:k]) != "spoof" {
		t.Errorf("socket got %q from %v, %v; want \"spoof\" from %v", buf[:k], from, err, spoofed)
	}
	if err := a.SendSpoofedUDP(netip.MustParseAddrPort("[2001:db8::1]:1"), dst, nil); err == nil {
		t.Error("IPv6 spoofing accepted")
	}
}
