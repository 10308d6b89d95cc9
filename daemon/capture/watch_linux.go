//go:build linux

package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// watchRefreshInterval is how often the watcher re-reads the device and
// its addresses even without a netlink notification (a missed or
// overflowed subscription).
const watchRefreshInterval = 30 * time.Second

// watcherConfig says what a watcher follows.
type watcherConfig struct {
	name     string // the device's name; "" for all devices ("any")
	ifIndex  int    // the device's index at start
	loopback bool   // the device is a loopback device
	// rebind is called when a device with the watched name appears under
	// a new index, to move the capture socket to it.
	rebind func() (ifIndex int, loopback bool, err error)
	log    *slog.Logger
}

// watcher keeps what Read checks addresses against current: the own
// addresses of the watched device (of every device for "any") and the
// loopback devices, re-read on every netlink link or address notification
// and periodically. It follows a device that is re-created under the same
// name, and logs the device going down, coming up, going away and coming
// back.
type watcher struct {
	cfg  watcherConfig
	set  atomic.Pointer[addrSet]
	h    *netlink.Handle
	ns   netns.NsHandle // pinned: the calling thread's, not the process's; else closed
	up   bool           // the device was up at the last look
	gone bool           // the device was missing at the last look
	done chan struct{}

	subDone  chan struct{}
	addrs    chan netlink.AddrUpdate
	links    chan netlink.LinkUpdate
	stopping atomic.Bool // subscriptions are being closed on purpose
}

// startWatcher reads the current state in the calling thread's network
// namespace and keeps it current until ctx is done. Its netlink sockets
// are opened in that namespace, also when a subscription is renewed later
// from another thread.
//
// Pinning the namespace makes the netlink library switch a thread into it
// (setns), which needs CAP_SYS_ADMIN, which the systemd unit does not
// grant: a daemon, all of whose threads are in one namespace, never pins;
// only tests, which open captures from threads switched into namespaces of
// their own, do, and they have the privilege.
func startWatcher(ctx context.Context, cfg watcherConfig) (*watcher, error) {
	ns, err := threadNSIfOwn()
	if err != nil {
		return nil, err
	}
	var h *netlink.Handle
	if ns.IsOpen() {
		h, err = netlink.NewHandleAt(ns)
	} else {
		h, err = netlink.NewHandle()
	}
	if err != nil {
		if ns.IsOpen() {
			ns.Close()
		}
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	w := &watcher{cfg: cfg, h: h, ns: ns, up: true, done: make(chan struct{})}
	// Subscribe before the first listing so no change falls in between.
	w.subscribe()
	if err := w.refresh(); err != nil {
		w.stop()
		return nil, err
	}
	go func() {
		defer close(w.done)
		defer w.stop()
		w.run(ctx)
	}()
	return w, nil
}

// threadNSIfOwn returns the calling thread's network namespace if it is
// not the process's (a test's thread switched into a namespace), else a
// closed handle.
func threadNSIfOwn() (netns.NsHandle, error) {
	ns, err := netns.Get()
	if err != nil {
		return netns.None(), fmt.Errorf("get the network namespace: %w", err)
	}
	proc, err := netns.GetFromPath("/proc/self/ns/net")
	if err != nil {
		ns.Close()
		return netns.None(), fmt.Errorf("get the process's network namespace: %w", err)
	}
	defer proc.Close()
	if ns.Equal(proc) {
		ns.Close()
		return netns.None(), nil
	}
	return ns, nil
}

// subscribeBuf is the receive buffer of the subscriptions: a burst of
// changes (containers starting) must not overflow them.
const subscribeBuf = 1 << 20

// subscribe opens the link and address subscriptions. A failure leaves
// that channel nil; the periodic refresh then stands in for it.
func (w *watcher) subscribe() {
	onErr := func(err error) {
		if !w.stopping.Load() { // closing a subscription interrupts its read
			w.cfg.log.Warn("capture: netlink subscription", "err", err)
		}
	}
	w.subDone = make(chan struct{})
	var ns *netns.NsHandle // nil: the calling thread's, the process's
	if w.ns.IsOpen() {
		ns = &w.ns
	}
	w.addrs = make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(w.addrs, w.subDone, netlink.AddrSubscribeOptions{Namespace: ns,
		ErrorCallback: onErr, ReceiveBufferSize: subscribeBuf, ReceiveBufferForceSize: true}); err != nil {
		w.cfg.log.Warn("capture: cannot subscribe to address changes, refreshing periodically", "err", err)
		w.addrs = nil
	}
	w.links = make(chan netlink.LinkUpdate, 64)
	if err := netlink.LinkSubscribeWithOptions(w.links, w.subDone, netlink.LinkSubscribeOptions{Namespace: ns,
		ErrorCallback: onErr, ReceiveBufferSize: subscribeBuf, ReceiveBufferForceSize: true}); err != nil {
		w.cfg.log.Warn("capture: cannot subscribe to link changes, refreshing periodically", "err", err)
		w.links = nil
	}
}

// unsubscribe closes both subscriptions and waits for their producers.
func (w *watcher) unsubscribe() {
	w.stopping.Store(true)
	close(w.subDone)
	drain(w.addrs)
	drain(w.links)
	w.stopping.Store(false)
}

// stop releases everything the watcher holds.
func (w *watcher) stop() {
	w.unsubscribe()
	w.h.Close()
	if w.ns.IsOpen() {
		w.ns.Close()
	}
}

// drain waits for a subscription channel to be closed by its producer.
func drain[T any](ch chan T) {
	if ch == nil {
		return
	}
	for range ch {
		// Emptying the channel lets the producer see the close and exit.
	}
}

func (w *watcher) run(ctx context.Context) {
	t := time.NewTicker(watchRefreshInterval)
	defer t.Stop()
	for {
		lost := false
		select {
		case <-ctx.Done():
			return
		case _, ok := <-w.addrs:
			lost = !ok
		case _, ok := <-w.links:
			lost = !ok
		case <-t.C:
			if w.addrs == nil || w.links == nil {
				lost = true
			}
		}
		if lost {
			// A subscription ended (its socket overflowed, say): renew
			// both, then look, since changes may have been missed.
			w.cfg.log.Warn("capture: netlink subscription lost; renewing it", "interface", w.name())
			w.unsubscribe()
			w.subscribe()
		}
		// Coalesce a burst of notifications into one look.
		for more := true; more; {
			select {
			case _, more = <-w.addrs:
			case _, more = <-w.links:
			default:
				more = false
			}
		}
		if err := w.refresh(); err != nil {
			w.cfg.log.Warn("capture: refreshing the interface and its addresses", "interface", w.name(), "err", err)
		}
	}
}

// name is the watched interface's name for logs.
func (w *watcher) name() string {
	if w.cfg.name == "" {
		return AnyInterface
	}
	return w.cfg.name
}

// refresh looks at the device and its addresses and swaps in a new set.
func (w *watcher) refresh() error {
	var loIdx []int
	if w.cfg.name != "" {
		w.follow()
	} else {
		links, err := w.h.LinkList()
		if err != nil {
			return fmt.Errorf("list links: %w", err)
		}
		for _, l := range links {
			if l.Attrs().Flags&net.FlagLoopback != 0 {
				loIdx = append(loIdx, l.Attrs().Index)
			}
		}
	}
	var link netlink.Link
	if w.cfg.name != "" {
		if w.gone {
			w.set.Store(newAddrSet(nil, false, nil))
			return nil
		}
		link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: w.cfg.ifIndex}}
	}
	var (
		list []netlink.Addr
		err  error
	)
	for range 3 {
		list, err = w.h.AddrList(link, netlink.FAMILY_ALL)
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil && !errors.Is(err, netlink.ErrDumpInterrupted) {
		return fmt.Errorf("list addresses: %w", err)
	}
	prefixes := make([]netip.Prefix, 0, len(list))
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		bits, _ := a.Mask.Size()
		prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), bits))
	}
	s := newAddrSet(prefixes, w.cfg.loopback, loIdx)
	w.set.Store(s)
	w.cfg.log.Debug("capture: local addresses", "interface", w.name(), "ifindex", w.cfg.ifIndex, "count", s.len())
	return nil
}

// follow looks up the watched device by name: it logs a change of its
// state and moves the capture to it when it was re-created.
func (w *watcher) follow() {
	l, err := w.h.LinkByName(w.cfg.name)
	var nf netlink.LinkNotFoundError
	switch {
	case errors.As(err, &nf):
		if !w.gone {
			w.gone = true
			w.cfg.log.Warn("capture: interface removed; waiting for it to come back", "interface", w.cfg.name)
		}
		return
	case err != nil:
		w.cfg.log.Warn("capture: looking up the interface", "interface", w.cfg.name, "err", err)
		return
	}
	if idx := l.Attrs().Index; idx != w.cfg.ifIndex {
		newIdx, lo, err := w.cfg.rebind()
		if err != nil {
			w.cfg.log.Error("capture: cannot follow the re-created interface; knocks on it are not heard", "interface", w.cfg.name, "err", err)
			w.gone = true
			return
		}
		w.cfg.log.Warn("capture: interface re-created; capturing on it again", "interface", w.cfg.name,
			"old_ifindex", w.cfg.ifIndex, "ifindex", newIdx)
		w.cfg.ifIndex, w.cfg.loopback = newIdx, lo
		w.up = true
	} else if w.gone {
		w.cfg.log.Warn("capture: interface is back", "interface", w.cfg.name, "ifindex", idx)
	}
	w.gone = false
	if up := l.Attrs().Flags&net.FlagUp != 0; up != w.up {
		w.up = up
		if up {
			w.cfg.log.Info("capture: interface up again", "interface", w.cfg.name)
		} else {
			w.cfg.log.Warn("capture: interface down; knocks resume when it comes up", "interface", w.cfg.name)
		}
	}
}

// isLocal reports whether a is currently an own address.
func (w *watcher) isLocal(a netip.Addr) bool { return w.set.Load().contains(a) }

// isLoopbackIndex reports whether ifIndex is a loopback device (known with
// "any" only).
func (w *watcher) isLoopbackIndex(ifIndex int) bool { return w.set.Load().isLoopbackIndex(ifIndex) }
