//go:build linux

package firewall

import (
	"testing"
	"time"
)

// TestIntegrationIPTablesRestore: an admin reloads iptables (flushing every
// chain, doorman's included, and putting the admin's rules back, as
// iptables-restore does). Within a couple of seconds the backend puts its
// chain and jump back; the open door's connection survives and a new door
// works (issue "doormand in production", item 3).
func TestIntegrationIPTablesRestore(t *testing.T) {
	n := newTestNet(t)
	n.dropAllIPT(t, false)
	b := NewIPTables(IPTConfig{})
	r := n.start(t, b)
	open := door(1, n.cli4, n.srv4, DoorArmed, 0, 30*time.Second)
	n.apply(t, b, open)
	conn := n.mustConnect(t, n.cli4, n.port(), n.srv4, "through the door")
	c := r.nextClaim(t, 2*time.Second)
	open.State, open.SrcPort = DoorClaimed, c.SrcPort
	n.apply(t, b, open)
	open.State = DoorNarrow
	n.apply(t, b, open)

	for _, ipt := range []string{"iptables", "ip6tables"} {
		n.sh(t, ipt, "-P", "INPUT", "ACCEPT")
		n.sh(t, ipt, "-F")
		n.sh(t, ipt, "-X")
	}
	n.dropAllIPT(t, false)
	r.waitRepaired(t, 4*time.Second, "iptables chain")
	if err := echo(conn); err != nil {
		t.Fatalf("the open door's connection died with the reload: %v", err)
	}
	n.apply(t, b, door(2, n.cli4, n.srv4, DoorArmed, 0, 30*time.Second))
	n.mustConnect(t, n.cli4, n.port(), n.srv4, "a new door after the reload")
}
