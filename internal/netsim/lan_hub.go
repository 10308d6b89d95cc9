//go:build linux

package netsim

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// SetHub makes the LAN's bridge flood every frame to every port, like a
// hub, so that a member in promiscuous mode sees unicast traffic between
// the others. A bridge normally forwards a unicast frame only to the port
// it learned the destination on; SetHub turns learning off on the ports
// attached so far and forgets what they already learned (ports keep
// flooding unknown unicast, which is the bridge default). Call it after
// attaching all members: ports attached later learn as usual.
func (l *LAN) SetHub() error {
	links, err := l.sw.nl.LinkList()
	if err != nil {
		return fmt.Errorf("netsim: LAN %s hub: list ports: %w", l.name, err)
	}
	br := l.bridge.Attrs().Index
	var errs []error
	for _, p := range links {
		if p.Attrs().MasterIndex != br {
			continue
		}
		if err := l.sw.nl.LinkSetLearning(p, false); err != nil {
			errs = append(errs, fmt.Errorf("port %s learning off: %w", p.Attrs().Name, err))
			continue
		}
		if err := l.sw.nl.LinkSetFlood(p, true); err != nil {
			errs = append(errs, fmt.Errorf("port %s flood on: %w", p.Attrs().Name, err))
		}
		errs = append(errs, l.forgetLearned(p))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("netsim: LAN %s hub: %w", l.name, err)
	}
	return nil
}

// forgetLearned deletes the addresses the bridge learned on port p; the
// permanent entries (the port's own address) stay.
func (l *LAN) forgetLearned(p netlink.Link) error {
	fdb, err := l.sw.nl.NeighList(p.Attrs().Index, unix.AF_BRIDGE)
	if err != nil {
		return fmt.Errorf("port %s fdb: %w", p.Attrs().Name, err)
	}
	var errs []error
	for _, n := range fdb {
		if n.State&(netlink.NUD_PERMANENT|netlink.NUD_NOARP) != 0 || n.LinkIndex != p.Attrs().Index {
			continue
		}
		if err := l.sw.nl.NeighDel(&n); err != nil && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, fmt.Errorf("port %s forget %s: %w", p.Attrs().Name, n.HardwareAddr, err))
		}
	}
	return errors.Join(errs...)
}
