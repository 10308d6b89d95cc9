//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/vishvananda/netlink"
)

// LAN is a broadcast segment: a Linux bridge in a hidden switch namespace
// ("<runid>-sw.<name>") with one veth port per member host, all in one /24
// and /64.
type LAN struct {
	name   string
	net    *Net
	sw     *Host
	bridge netlink.Link
	sub    *subnet

	mu       sync.Mutex
	ports    int
	ends     []*LinkEnd
	gw4, gw6 netip.Addr // default gateway for members, set by Router
}

// LAN creates a LAN called name and attaches hosts to it in order.
func (n *Net) LAN(name string, hosts ...*Host) (*LAN, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: LAN %q", ErrBadName, name)
	}
	n.mu.Lock()
	if err := n.checkOpenLocked(); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	if _, ok := n.lans[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: LAN %q", ErrExists, name)
	}
	n.lans[name] = nil
	n.mu.Unlock()

	l, err := n.newLAN(name)
	n.mu.Lock()
	if err != nil {
		delete(n.lans, name)
	} else {
		n.lans[name] = l
	}
	n.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for _, h := range hosts {
		if _, err := l.Attach(h); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (n *Net) newLAN(name string) (*LAN, error) {
	sub, err := n.allocSubnet()
	if err != nil {
		return nil, err
	}
	sw, err := n.newHost("sw."+name, n.runID+"-sw."+name, true)
	if err != nil {
		return nil, err
	}
	off := false
	// Snooping off: with no querier it could starve IPv6 neighbour discovery.
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "br0"}, MulticastSnooping: &off}
	if err := sw.nl.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("netsim: bridge for LAN %s: %w", name, err)
	}
	brl, err := sw.nl.LinkByName("br0")
	if err == nil {
		err = sw.nl.LinkSetUp(brl)
	}
	if err != nil {
		return nil, fmt.Errorf("netsim: bridge up for LAN %s: %w", name, err)
	}
	n.log.Debug("lan", "lan", name, "net4", sub.p4)
	return &LAN{name: name, net: n, sw: sw, bridge: brl, sub: sub}, nil
}

// Name returns the LAN's name.
func (l *LAN) Name() string { return l.name }

// Prefix4 returns the LAN's IPv4 subnet.
func (l *LAN) Prefix4() netip.Prefix { return l.sub.p4 }

// Prefix6 returns the LAN's IPv6 subnet.
func (l *LAN) Prefix6() netip.Prefix { return l.sub.p6 }

// Attach connects h to the LAN with a new interface and the next free
// addresses. If the LAN has a router, h's default routes point at it.
func (l *LAN) Attach(h *Host) (*LinkEnd, error) { return l.AttachAs(h, "") }

// AttachAs is Attach with a chosen interface name in h (see [ValidIfName]
// and [LinkOptions].NameA); "" picks the next automatic name.
func (l *LAN) AttachAs(h *Host, ifname string) (*LinkEnd, error) {
	if h == nil || h.net != l.net {
		return nil, errors.New("netsim: Attach needs a host of this network")
	}
	if err := checkIfName(ifname); err != nil {
		return nil, err
	}
	l.mu.Lock()
	port := fmt.Sprintf("p%d", l.ports)
	l.ports++
	l.mu.Unlock()
	ifname = h.ifName(ifname, "eth")
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: port, MasterIndex: l.bridge.Attrs().Index},
		PeerName:      ifname,
		PeerNamespace: netlink.NsFd(h.handle),
	}
	if err := l.sw.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("netsim: LAN %s port for %s: %w", l.name, h.name, err)
	}
	pl, err := l.sw.nl.LinkByName(port)
	if err == nil {
		err = l.sw.nl.LinkSetUp(pl)
	}
	if err != nil {
		return nil, fmt.Errorf("netsim: LAN %s port %s up: %w", l.name, port, err)
	}
	e, err := h.configureEnd(ifname, l.sub, kindVeth)
	if err != nil {
		return nil, err
	}
	if err := waitReady(e); err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.ends = append(l.ends, e)
	gw4, gw6 := l.gw4, l.gw6
	l.mu.Unlock()
	if gw4.IsValid() {
		if err := h.SetDefaultRoutes(gw4, gw6); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Ends returns the members' interfaces in the order they joined.
func (l *LAN) Ends() []*LinkEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*LinkEnd(nil), l.ends...)
}

// End returns h's first interface on the LAN, or nil.
func (l *LAN) End(h *Host) *LinkEnd {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.ends {
		if e.Host == h {
			return e
		}
	}
	return nil
}
