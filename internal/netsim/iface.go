//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Changes to interfaces after they were built: what a host sees when a
// cable is pulled, an administrator adds an address, or a device is
// unplugged and plugged in again. Programs that follow interfaces (a
// capture bound to a device name, an address watcher) are tested with them.

// testRanges are the only ranges AddAddr accepts, so that a test cannot
// put an address on a simulated host that belongs to a real network.
var testRanges = [...]netip.Prefix{
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// SetUp brings the end's interface up (true) or down (false). Going down
// takes the carrier from a veth peer, and the kernel flushes the
// interface's IPv6 addresses (IPv4 ones stay); coming up restores no
// address (see [Host.AddAddr]). SetUp(true) returns once the interface and
// its peer, if any, are operationally up, which the kernel reports up to a
// second later.
func (e *LinkEnd) SetUp(up bool) error {
	h := e.Host
	link, err := h.nl.LinkByIndex(e.IfIndex)
	if err != nil {
		return fmt.Errorf("netsim: %s in %s: %w", e.Name, h.name, err)
	}
	if !up {
		if err := h.nl.LinkSetDown(link); err != nil {
			return fmt.Errorf("netsim: down %s in %s: %w", e.Name, h.name, err)
		}
		return nil
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return fmt.Errorf("netsim: up %s in %s: %w", e.Name, h.name, err)
	}
	deadline := time.Now().Add(readyTimeout)
	for _, end := range []*LinkEnd{e, e.peer} {
		for end != nil {
			ok, err := end.operUp()
			if err != nil {
				return err
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("netsim: %s in %s not up after %v", end.Name, end.Host.name, readyTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// operUp reports whether the kernel says the end's interface can carry
// traffic (tun devices report "unknown" for that).
func (e *LinkEnd) operUp() (bool, error) {
	link, err := e.Host.nl.LinkByIndex(e.IfIndex)
	if err != nil {
		return false, fmt.Errorf("netsim: %s in %s: %w", e.Name, e.Host.name, err)
	}
	st := link.Attrs().OperState
	return st == netlink.OperUp || st == netlink.OperUnknown, nil
}

// AddAddr adds address p (with its prefix length, say 198.18.1.50/32) to
// interface ifname of the host, "lo" included, and returns once the kernel
// routes it as a local address, so packets to it are accepted at once.
// Like the addresses netsim hands out, p must lie in 198.18.0.0/15 or
// 2001:db8::/32. The address is not recorded in any [LinkEnd].
func (h *Host) AddAddr(ifname string, p netip.Prefix) error {
	link, addr, err := h.addrArgs(ifname, p)
	if err != nil {
		return err
	}
	if err := h.nl.AddrAdd(link, addr); err != nil {
		return fmt.Errorf("netsim: add %v to %s in %s: %w", p, ifname, h.name, err)
	}
	// IPv6 addresses, even without DAD, get their local route from a
	// kernel work item; until then the host drops packets to them.
	deadline := time.Now().Add(readyTimeout)
	for {
		rs, err := h.nl.RouteGet(p.Addr().AsSlice())
		if err == nil && len(rs) > 0 && rs[0].Type == unix.RTN_LOCAL {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("netsim: %v on %s in %s not local after %v (%v)", p, ifname, h.name, readyTimeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// DelAddr removes address p, as given to AddAddr or handed out by netsim,
// from interface ifname of the host.
func (h *Host) DelAddr(ifname string, p netip.Prefix) error {
	link, addr, err := h.addrArgs(ifname, p)
	if err != nil {
		return err
	}
	if err := h.nl.AddrDel(link, addr); err != nil {
		return fmt.Errorf("netsim: remove %v from %s in %s: %w", p, ifname, h.name, err)
	}
	return nil
}

func (h *Host) addrArgs(ifname string, p netip.Prefix) (netlink.Link, *netlink.Addr, error) {
	if !p.IsValid() || !(testRanges[0].Contains(p.Addr()) || testRanges[1].Contains(p.Addr())) {
		return nil, nil, fmt.Errorf("netsim: address %v: not in 198.18.0.0/15 or 2001:db8::/32", p)
	}
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		return nil, nil, fmt.Errorf("netsim: find %s in %s: %w", ifname, h.name, err)
	}
	// NODAD, as for the addresses netsim hands out: usable at once.
	return link, &netlink.Addr{IPNet: ipNet(p), Flags: unix.IFA_F_NODAD}, nil
}

// Delete removes a veth link: both interfaces, and with them any macvlan
// on top of them. The ends' fields stay as they were, stale. Relayed and
// tun links cannot be deleted (errors.ErrUnsupported).
func (l *Link) Delete() error {
	if l.Relayed {
		return fmt.Errorf("netsim: delete a relayed link: %w", errors.ErrUnsupported)
	}
	a := l.A.Host
	// Deleting one end of a veth pair deletes the other.
	if err := a.nl.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Index: l.A.IfIndex}}); err != nil {
		return fmt.Errorf("netsim: delete %s in %s: %w", l.A.Name, a.name, err)
	}
	return nil
}

// Recreate builds a new veth link in place of l, which Delete has removed:
// the same hosts, interface names and addresses, but new interface indexes
// and MACs, as when a device is unplugged and plugged in again. Loss set
// with SetLoss still applies (its rules match the interface name). It
// returns once both ends carry traffic, like Link.
func (l *Link) Recreate() (*Link, error) {
	if l.Relayed {
		return nil, fmt.Errorf("netsim: recreate a relayed link: %w", errors.ErrUnsupported)
	}
	a, b := l.A.Host, l.B.Host
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: l.A.Name},
		PeerName:      l.B.Name,
		PeerNamespace: netlink.NsFd(b.handle),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("netsim: veth %s:%s-%s:%s: %w", a.name, l.A.Name, b.name, l.B.Name, err)
	}
	nl := &Link{}
	var err error
	for _, e := range []struct {
		old *LinkEnd
		new **LinkEnd
	}{{l.A, &nl.A}, {l.B, &nl.B}} {
		p4 := netip.PrefixFrom(e.old.Addr4, e.old.Prefix4.Bits())
		p6 := netip.PrefixFrom(e.old.Addr6, e.old.Prefix6.Bits())
		if *e.new, err = e.old.Host.configureAddrs(e.old.Name, kindVeth, e.old.sub, p4, p6, netip.Addr{}, netip.Addr{}); err != nil {
			return nil, err
		}
	}
	nl.A.peer, nl.B.peer = nl.B, nl.A
	if err := waitReady(nl.A, nl.B); err != nil {
		return nil, err
	}
	return nl, nil
}
