//go:build linux

package capture

import (
	"fmt"
	"testing"
	"time"
)

// TestIntegrationLinkFlaps: the watched interface going down and up, losing
// and regaining addresses, and being deleted and re-created (a new ifindex)
// never ends Read, and a knock after each is delivered, in every mode
// (doormand in production, item 5: "recvmsg ... network is down" killed the
// daemon).
func TestIntegrationLinkFlaps(t *testing.T) {
	for _, mode := range []Mode{ModeNetwork, ModeRaw, ModeSocket} {
		t.Run(mode.String(), func(t *testing.T) {
			n := newTestNet(t)
			c := open(t, n.b, Config{Interface: vethB, Mode: mode, LinkHeaderLen: -1, KnockPort: testPort})
			ch := reader(t, c)
			sendUDP(t, n.a, knock4, knockTo("before"))
			expectKnock(t, ch, knockTo("before"))

			// Down and up: IPv4 addresses stay, IPv6 ones are flushed.
			must(t, "link down", n.hb.LinkSetDown(n.bLink))
			time.Sleep(50 * time.Millisecond) // let the watcher and the socket see it
			must(t, "link up", n.hb.LinkSetUp(n.bLink))
			waitOperUp(t, n.hb, vethB)
			knockUntilDelivered(t, n, ch, "updown")

			// The IPv6 address comes back: knocks to it count again.
			must(t, "re-add address", n.hb.AddrAdd(n.bLink, addrOf(addrB6)))
			waitLocal(t, n.hb, addrB6.Addr())
			n.neigh(t, n.ha, n.aLink, addrB6.Addr(), n.bLink.Attrs().HardwareAddr)
			knockUntilDelivered(t, n, ch, "v6back")

			// Deleted and re-created under the same name.
			old := n.bLink.Attrs().Index
			must(t, "delete veth", n.hb.LinkDel(n.bLink))
			time.Sleep(50 * time.Millisecond)
			n.connect(t)
			if n.bLink.Attrs().Index == old {
				t.Fatalf("re-created veth kept ifindex %d", old)
			}
			p := knockUntilDelivered(t, n, ch, "recreated")
			if p.IfIndex != n.bLink.Attrs().Index {
				t.Errorf("knock on ifindex %d, want the new %d", p.IfIndex, n.bLink.Attrs().Index)
			}
			if c.LinkType() != "udp socket" && c.LinkType() != "ethernet" {
				t.Errorf("LinkType = %q", c.LinkType())
			}
		})
	}
}

// knockUntilDelivered sends knocks (IPv4, and IPv6 for tags ending in
// "v6back") until one is delivered: the capture may need a moment to
// follow a change. Drops on the way (not yet a local address) are fine;
// a fatal error is not.
func knockUntilDelivered(t *testing.T, n *testNet, ch <-chan result, tag string) Packet {
	t.Helper()
	dst := knock4
	if tag == "v6back" {
		dst = knock6
	}
	deadline := time.Now().Add(opTimeout)
	for i := 0; time.Now().Before(deadline); i++ {
		payload := knockTo(fmt.Sprintf("%s%d", tag, i%10))
		sendUDP(t, n.a, dst, payload)
		select {
		case r, ok := <-ch:
			if !ok {
				t.Fatal("reader ended")
			}
			switch {
			case r.err == nil && r.payload == payload:
				return r.p
			case r.err != nil && !isSentinel(r.err):
				t.Fatalf("Read failed: %v", r.err)
			}
		case <-time.After(100 * time.Millisecond):
		}
	}
	t.Fatalf("no %s knock delivered within %v", tag, opTimeout)
	return Packet{}
}
