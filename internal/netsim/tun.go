//go:build linux

package netsim

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// TunLink connects hosts a and b with a raw-IP link: a tun device in each
// host ("tunN") and a userspace relay copying IP packets between them. It
// stands in for tunnel interfaces (WireGuard, ipip) this kernel cannot
// create: no Ethernet header, point-to-point addresses (a is .1 with peer .2
// of a fresh /24, likewise for IPv6). Impairments in o apply as on a
// relayed Link.
func (n *Net) TunLink(a, b *Host, o LinkOptions) (*Link, error) {
	if a == nil || b == nil || a == b || a.net != n || b.net != n {
		return nil, errors.New("netsim: TunLink needs two distinct hosts of this network")
	}
	if err := o.checkNames(); err != nil {
		return nil, err
	}
	sub, err := n.allocSubnet()
	if err != nil {
		return nil, err
	}
	return n.relayedLink(a, b, sub, kindTun, o)
}

// relayedLink builds a tap (kindTap) or tun (kindTun) link with a relay.
func (n *Net) relayedLink(a, b *Host, sub *subnet, kind endKind, o LinkOptions) (*Link, error) {
	stem, tap := "eth", true
	if kind == kindTun {
		stem, tap = "tun", false
	}
	nameA, nameB := o.ifNames(a, b, stem)
	fa, err := a.openTun(nameA, tap)
	if err != nil {
		return nil, err
	}
	fb, err := b.openTun(nameB, tap)
	if err != nil {
		fa.Close()
		return nil, err
	}
	r := newRelay(fa, fb, o, n.log.With("link", a.name+"-"+b.name))
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		r.close()
		return nil, ErrClosed
	}
	n.relays = append(n.relays, r)
	n.mu.Unlock()

	l := &Link{Relayed: true, relay: r}
	if kind == kindTap {
		if l.A, err = a.configureEnd(nameA, sub, kind); err != nil {
			return nil, err
		}
		if l.B, err = b.configureEnd(nameB, sub, kind); err != nil {
			return nil, err
		}
	} else {
		pa4, pa6, err := sub.alloc()
		if err != nil {
			return nil, err
		}
		pb4, pb6, err := sub.alloc()
		if err != nil {
			return nil, err
		}
		if l.A, err = a.configureAddrs(nameA, kind, sub, pa4, pa6, pb4.Addr(), pb6.Addr()); err != nil {
			return nil, err
		}
		if l.B, err = b.configureAddrs(nameB, kind, sub, pb4, pb6, pa4.Addr(), pa6.Addr()); err != nil {
			return nil, err
		}
	}
	l.A.peer, l.B.peer = l.B, l.A
	l.A.relay, l.B.relay = r, r
	l.A.toMe, l.B.toMe = dirBA, dirAB
	r.start()
	if err := waitReady(l.A, l.B); err != nil {
		return nil, err
	}
	n.log.Debug("relayed link", "a", a.name, "b", b.name, "tun", !tap, "net4", sub.p4)
	return l, nil
}

// openTun creates a non-persistent tun or tap device called name inside the
// host and returns its queue. The device lives as long as the file is open.
func (h *Host) openTun(name string, tap bool) (*os.File, error) {
	var f *os.File
	err := h.Do(func() error {
		// The device joins the namespace of the thread that opens the
		// clone device, hence Do.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("netsim: open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return fmt.Errorf("netsim: tun name %q: %w", name, err)
		}
		flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if tap {
			flags = unix.IFF_TAP | unix.IFF_NO_PI
		}
		ifr.SetUint16(flags)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("netsim: TUNSETIFF %s: %w", name, err)
		}
		// Non-blocking, so os.File uses the poller and Close unblocks Read.
		f = os.NewFile(uintptr(fd), "tun:"+name)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: %s in %s: %w", name, h.name, err)
	}
	return f, nil
}

// Peer returns the other end of a point-to-point link (for a macvlan, the
// peer of its parent), or nil for LAN ends.
func (e *LinkEnd) Peer() *LinkEnd { return e.peer }
