//go:build linux

package conformance

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestIntegrationTopology checks what the README promises adapters about
// the network: the interface names, the server's second interface in a
// subnet of its own, quiet IPv6, namespaces named by the run id, and that
// Close leaves none of them behind.
func TestIntegrationTopology(t *testing.T) {
	needRoot(t)
	topo, err := NewTopology(context.Background(), "")
	if errors.Is(err, ErrNoPrivilege) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	t.Cleanup(func() {
		if !closed {
			topo.Close()
		}
	})
	lan := netip.PrefixFrom(topo.Server.Addr, 24).Masked()
	for _, h := range []Host{topo.Server, topo.Client, topo.Client2, topo.Foreign} {
		if !strings.HasPrefix(h.NS, topo.RunID()+"-") || !strings.HasPrefix(topo.RunID(), DefaultPrefix+"-") {
			t.Errorf("namespace %s not named by the run id %s", h.NS, topo.RunID())
		}
		if !lan.Contains(h.Addr) || !netip.MustParsePrefix("198.18.0.0/15").Contains(h.Addr) ||
			!netip.MustParsePrefix("2001:db8::/32").Contains(h.Addr6) {
			t.Errorf("%s: addresses %v %v outside the LAN %v or the allowed ranges", h.NS, h.Addr, h.Addr6, lan)
		}
		err := h.Do(func() error {
			ifi, err := net.InterfaceByName(IfName)
			if err != nil {
				return err
			}
			if ifi.Index != h.ifIndex() || ifi.HardwareAddr.String() != h.mac().String() {
				t.Errorf("%s: %s is index %d %v, topology says %d %v", h.NS, IfName, ifi.Index, ifi.HardwareAddr, h.ifIndex(), h.mac())
			}
			b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + IfName + "/router_solicitations")
			if err == nil && strings.TrimSpace(string(b)) != "0" {
				t.Errorf("%s: %s sends router solicitations (%s)", h.NS, IfName, b)
			}
			return err
		})
		if err != nil {
			t.Errorf("%s: %v", h.NS, err)
		}
	}
	if lan.Contains(topo.OtherAddr) || !topo.OtherAddr.Is4() || !topo.OtherAddr6.Is6() {
		t.Errorf("other addresses %v %v, want a subnet other than %v", topo.OtherAddr, topo.OtherAddr6, lan)
	}
	var addrs []net.Addr
	err = topo.Server.Do(func() error {
		ifi, err := net.InterfaceByName(OtherIfName)
		if err == nil {
			addrs, err = ifi.Addrs()
		}
		return err
	})
	if err != nil {
		t.Fatalf("server's %s: %v", OtherIfName, err)
	}
	if !slices.ContainsFunc(addrs, func(a net.Addr) bool {
		p, err := netip.ParsePrefix(a.String())
		return err == nil && p.Addr() == topo.OtherAddr
	}) {
		t.Errorf("%s has %v, not %v", OtherIfName, addrs, topo.OtherAddr)
	}

	closed = true
	if err := topo.Close(); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), topo.RunID()) {
			t.Errorf("namespace %s left after Close", e.Name())
		}
	}
}
