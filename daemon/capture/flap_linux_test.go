//go:build linux

package capture

import (
	"fmt"
	"net/netip"
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
			c := open(t, n.b, Config{Interface: n.ifB(), Mode: mode, LinkHeaderLen: -1, KnockPort: testPort})
			ch := reader(t, c)
			sendUDP(t, n.a, n.knock4, knockTo("before"))
			expectKnock(t, ch, knockTo("before"))

			// Down and up: IPv4 addresses stay, IPv6 ones are flushed.
			must(t, "link down", n.link.B.SetUp(false))
			time.Sleep(50 * time.Millisecond) // let the watcher and the socket see it
			must(t, "link up", n.link.B.SetUp(true))
			knockUntilDelivered(t, n, ch, "updown")

			// The IPv6 address comes back: knocks to it count again.
			must(t, "re-add address", n.b.AddAddr(n.ifB(), netip.PrefixFrom(n.b6, n.link.B.Prefix6.Bits())))
			knockUntilDelivered(t, n, ch, "v6back")

			// Deleted and re-created under the same name.
			old := n.link.B.IfIndex
			must(t, "delete veth", n.link.Delete())
			time.Sleep(50 * time.Millisecond)
			var err error
			n.link, err = n.link.Recreate()
			must(t, "re-create veth", err)
			if n.link.B.IfIndex == old {
				t.Fatalf("re-created veth kept ifindex %d", old)
			}
			p := knockUntilDelivered(t, n, ch, "recreated")
			if p.IfIndex != n.link.B.IfIndex {
				t.Errorf("knock on ifindex %d, want the new %d", p.IfIndex, n.link.B.IfIndex)
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
	dst := n.knock4
	if tag == "v6back" {
		dst = n.knock6
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
