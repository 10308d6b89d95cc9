//go:build linux

package netsim

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// LinkOptions describe a link: its interface names and impairments. The
// zero value is a clean veth link with automatic names. If Delay, Jitter,
// Duplicate or Reorder is set the link is built from two tap devices and a
// userspace relay instead (see the package doc), since the kernel has no
// netem. Percentages are clamped to 0-100.
type LinkOptions struct {
	// Delay is added to every frame in each direction.
	Delay time.Duration
	// Jitter varies the delay uniformly within ±Jitter; frames may then be
	// reordered, as with netem.
	Jitter time.Duration
	// Loss drops this percentage of packets arriving at each end.
	Loss int
	// Duplicate delivers this percentage of frames twice.
	Duplicate int
	// Reorder sends this percentage of frames out of order: without the
	// Delay if Delay is set, else held back by ReorderHold so that later
	// frames overtake them.
	Reorder int
	// QueueLen bounds the frames waiting in each direction of a relay; more
	// are dropped. 0 means DefaultQueueLen.
	QueueLen int
	// NameA and NameB name the interfaces in the first and second host
	// (see [ValidIfName]); "" picks the host's next automatic name (eth0,
	// eth1, …, or tun0, … for TunLink). A chosen name suits programs whose
	// configuration names an interface; it must not be in use in that host.
	NameA, NameB string
}

// checkNames rejects invalid chosen names before anything is built.
func (o LinkOptions) checkNames() error {
	return errors.Join(checkIfName(o.NameA), checkIfName(o.NameB))
}

// ifNames returns the interface names for a link between a and b.
func (o LinkOptions) ifNames(a, b *Host, stem string) (string, string) {
	return a.ifName(o.NameA, stem), b.ifName(o.NameB, stem)
}

func (o LinkOptions) relayed() bool {
	return o.Delay > 0 || o.Jitter > 0 || o.Duplicate > 0 || o.Reorder > 0
}

// endKind says how a link end is built.
type endKind int

const (
	kindVeth    endKind = iota // veth pair or LAN port
	kindTap                    // relayed Ethernet
	kindTun                    // relayed raw IP
	kindMacvlan                // macvlan on another end
)

// LinkEnd is one host's side of a link or LAN: an interface with addresses.
// Its fields are set at creation and must not be changed.
type LinkEnd struct {
	// Host is the host the interface is in.
	Host *Host
	// Name is the interface name inside Host (at most 15 characters).
	Name string
	// IfIndex is the interface index inside Host.
	IfIndex int
	// MAC is the interface's hardware address; nil for tun ends.
	MAC net.HardwareAddr
	// Addr4 and Addr6 are the interface's addresses.
	Addr4, Addr6 netip.Addr
	// Prefix4 and Prefix6 are the subnets of the link; for tun ends they
	// are the single peer addresses (/32, /128).
	Prefix4, Prefix6 netip.Prefix

	kind  endKind
	sub   *subnet
	peer  *LinkEnd // the other end of a point-to-point link
	relay *relay   // carries frames to this end, if relayed
	toMe  int      // relay direction index that delivers into this end
}

// Link is a point-to-point link between two hosts.
type Link struct {
	// A and B are the ends in the first and second host given to Link.
	A, B *LinkEnd
	// Relayed reports whether frames cross a userspace relay.
	Relayed bool

	relay *relay
}

// Link connects hosts a and b with a fresh /24 and /64. Without impairments
// it is a veth pair; see LinkOptions for when it is relayed instead. Loss on
// a veth link is an nftables rule (see SetLoss).
func (n *Net) Link(a, b *Host, o LinkOptions) (*Link, error) {
	if a == nil || b == nil || a == b || a.net != n || b.net != n {
		return nil, errors.New("netsim: Link needs two distinct hosts of this network")
	}
	if err := o.checkNames(); err != nil {
		return nil, err
	}
	sub, err := n.allocSubnet()
	if err != nil {
		return nil, err
	}
	if o.relayed() {
		return n.relayedLink(a, b, sub, kindTap, o)
	}
	nameA, nameB := o.ifNames(a, b, "eth")
	veth := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(b.handle),
	}
	if err := a.nl.LinkAdd(veth); err != nil {
		return nil, fmt.Errorf("netsim: veth %s:%s-%s:%s: %w", a.name, nameA, b.name, nameB, err)
	}
	l := &Link{}
	if l.A, err = a.configureEnd(nameA, sub, kindVeth); err != nil {
		return nil, err
	}
	if l.B, err = b.configureEnd(nameB, sub, kindVeth); err != nil {
		return nil, err
	}
	l.A.peer, l.B.peer = l.B, l.A
	if err := waitReady(l.A, l.B); err != nil {
		return nil, err
	}
	if o.Loss > 0 {
		if err := l.SetLoss(o.Loss); err != nil {
			return nil, err
		}
	}
	n.log.Debug("link", "a", a.name, "b", b.name, "net4", sub.p4)
	return l, nil
}

// configureEnd gives interface ifname in h the next addresses of sub, brings
// it up and returns the end.
func (h *Host) configureEnd(ifname string, sub *subnet, kind endKind) (*LinkEnd, error) {
	p4, p6, err := sub.alloc()
	if err != nil {
		return nil, err
	}
	return h.configureAddrs(ifname, kind, sub, p4, p6, netip.Addr{}, netip.Addr{})
}

// configureAddrs assigns p4 and p6 to ifname (point-to-point to peer4/peer6
// when those are valid), brings it up and returns the end.
func (h *Host) configureAddrs(ifname string, kind endKind, sub *subnet, p4, p6 netip.Prefix, peer4, peer6 netip.Addr) (*LinkEnd, error) {
	link, err := h.nl.LinkByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("netsim: find %s in %s: %w", ifname, h.name, err)
	}
	for _, a := range []struct {
		p    netip.Prefix
		peer netip.Addr
	}{{p4, peer4}, {p6, peer6}} {
		// NODAD: the address is usable at once instead of after ~2s of DAD.
		addr := &netlink.Addr{IPNet: ipNet(a.p), Flags: unix.IFA_F_NODAD}
		if a.peer.IsValid() {
			addr.IPNet = ipNet(netip.PrefixFrom(a.p.Addr(), a.p.Addr().BitLen()))
			if a.peer.Is4() {
				addr.Peer = ipNet(netip.PrefixFrom(a.peer, 32))
			}
		}
		if err := h.nl.AddrAdd(link, addr); err != nil {
			return nil, fmt.Errorf("netsim: address %v on %s in %s: %w", a.p, ifname, h.name, err)
		}
	}
	if err := h.nl.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("netsim: up %s in %s: %w", ifname, h.name, err)
	}
	if peer6.IsValid() {
		// An IPv6 peer address does not get the kernel to route to the
		// peer (only IPv4's does), so the route is explicit.
		r := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(netip.PrefixFrom(peer6, 128)), Scope: netlink.SCOPE_LINK}
		if err := h.nl.RouteReplace(r); err != nil {
			return nil, fmt.Errorf("netsim: route to %v on %s in %s: %w", peer6, ifname, h.name, err)
		}
	}
	e := &LinkEnd{
		Host: h, Name: ifname, IfIndex: link.Attrs().Index,
		Addr4: p4.Addr(), Addr6: p6.Addr(), Prefix4: p4.Masked(), Prefix6: p6.Masked(),
		kind: kind, sub: sub,
	}
	if kind != kindTun {
		e.MAC = link.Attrs().HardwareAddr
	} else {
		e.Prefix4 = netip.PrefixFrom(peer4, 32)
		e.Prefix6 = netip.PrefixFrom(peer6, 128)
	}
	h.mu.Lock()
	if !h.addr4.IsValid() {
		h.addr4, h.addr6 = e.Addr4, e.Addr6
	}
	h.mu.Unlock()
	return e, nil
}

// MACVLAN adds a macvlan interface (bridge mode) on top of parent, in the
// same host, with the next free addresses of parent's subnet. It gives a
// host a second address and MAC on the same wire.
func (n *Net) MACVLAN(parent *LinkEnd) (*LinkEnd, error) {
	if parent == nil || parent.kind == kindTun || parent.kind == kindMacvlan || parent.sub == nil {
		return nil, fmt.Errorf("netsim: macvlan: %w", ErrNotEthernet)
	}
	h := parent.Host
	name := h.nextIfName("mv")
	mv := &netlink.Macvlan{
		LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: parent.IfIndex},
		Mode:      netlink.MACVLAN_MODE_BRIDGE,
	}
	if err := h.nl.LinkAdd(mv); err != nil {
		return nil, fmt.Errorf("netsim: macvlan on %s in %s: %w", parent.Name, h.name, err)
	}
	e, err := h.configureEnd(name, parent.sub, kindMacvlan)
	if err != nil {
		return nil, err
	}
	e.peer = parent.peer
	if err := waitReady(e); err != nil {
		return nil, err
	}
	return e, nil
}

// readyTimeout bounds how long link creation waits for the kernel to
// finish bringing an interface up.
const readyTimeout = 10 * time.Second

// waitReady waits until each end can carry traffic at once. The kernel
// raises carrier from a work queue that runs at most once a second, and
// only then does IPv6 join the solicited-node groups that neighbour
// discovery needs; a packet sent before that waits a second for a retry.
func waitReady(ends ...*LinkEnd) error {
	deadline := time.Now().Add(readyTimeout)
	for _, e := range ends {
		for {
			ok, err := e.ready()
			if err != nil {
				return err
			}
			if ok {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("netsim: %s in %s not ready after %v", e.Name, e.Host.name, readyTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

func (e *LinkEnd) ready() (bool, error) {
	link, err := e.Host.nl.LinkByIndex(e.IfIndex)
	if err != nil {
		return false, fmt.Errorf("netsim: %s in %s: %w", e.Name, e.Host.name, err)
	}
	if st := link.Attrs().OperState; st != netlink.OperUp && st != netlink.OperUnknown {
		return false, nil
	}
	if e.kind == kindTun {
		return true, nil
	}
	var joined bool
	err = e.Host.Do(func() error {
		// thread-self: /proc/net follows the process's namespace, not the thread's.
		b, err := os.ReadFile("/proc/thread-self/net/igmp6")
		if err != nil {
			return err
		}
		joined = strings.Contains(string(b), solicitedNode(e.Addr6))
		return nil
	})
	return joined, err
}

// solicitedNode returns the solicited-node multicast group of a as the 32
// hex digits /proc/net/igmp6 prints.
func solicitedNode(a netip.Addr) string {
	b := a.As16()
	g := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: b[13], 14: b[14], 15: b[15]}
	return hex.EncodeToString(g[:])
}
