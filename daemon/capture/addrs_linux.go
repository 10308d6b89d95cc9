package capture

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// addrRefreshInterval is how often the local address set is re-read even
// without a netlink notification (a missed or overflowed subscription).
const addrRefreshInterval = 30 * time.Second

// addrWatcher keeps the set of local addresses current: it re-reads them on
// every netlink address notification and periodically.
type addrWatcher struct {
	set     atomic.Pointer[addrSet]
	h       *netlink.Handle
	ifIndex int // 0 = all devices
	log     *slog.Logger
	done    chan struct{} // closed when run has returned
}

// startAddrWatcher reads the addresses of device ifIndex (0: all devices)
// of the calling thread's network namespace and keeps them current until
// ctx is done. Its netlink sockets are opened here, so they stay in the
// namespace that was current during the call.
func startAddrWatcher(ctx context.Context, ifIndex int, log *slog.Logger) (*addrWatcher, error) {
	h, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open netlink handle: %w", err)
	}
	w := &addrWatcher{h: h, ifIndex: ifIndex, log: log, done: make(chan struct{})}
	// Subscribe before the first listing so no change falls in between.
	updates := make(chan netlink.AddrUpdate, 64)
	subDone := make(chan struct{})
	err = netlink.AddrSubscribeWithOptions(updates, subDone, netlink.AddrSubscribeOptions{
		ErrorCallback: func(err error) {
			if ctx.Err() != nil {
				return // closing the subscription at shutdown interrupts its read
			}
			log.Warn("capture: address subscription", "err", err)
		},
	})
	if err != nil {
		log.Warn("capture: cannot subscribe to address changes, refreshing periodically", "err", err)
		updates = nil
	}
	if err := w.refresh(); err != nil {
		close(subDone)
		drain(updates)
		h.Close()
		return nil, err
	}
	go w.run(ctx, updates, subDone)
	return w, nil
}

// drain waits for a subscription channel to be closed by its producer.
func drain(ch chan netlink.AddrUpdate) {
	if ch == nil {
		return
	}
	for range ch {
		// Emptying the channel lets the producer see the close and exit.
	}
}

func (w *addrWatcher) run(ctx context.Context, updates chan netlink.AddrUpdate, subDone chan struct{}) {
	defer close(w.done)
	defer w.h.Close()
	t := time.NewTicker(addrRefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			close(subDone)
			drain(updates)
			return
		case _, ok := <-updates:
			if !ok {
				w.log.Warn("capture: address subscription ended, refreshing periodically")
				updates = nil
				continue
			}
			// Coalesce a burst of notifications into one listing.
			for more := true; more; {
				select {
				case _, more = <-updates:
				default:
					more = false
				}
			}
		case <-t.C:
		}
		if err := w.refresh(); err != nil {
			w.log.Warn("capture: refreshing local addresses", "err", err)
		}
	}
}

// refresh lists the addresses and swaps in a new set.
func (w *addrWatcher) refresh() error {
	var link netlink.Link
	if w.ifIndex > 0 {
		link = &netlink.Device{LinkAttrs: netlink.LinkAttrs{Index: w.ifIndex}}
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
	s := newAddrSet(prefixes)
	w.set.Store(s)
	w.log.Debug("capture: local addresses", "ifindex", w.ifIndex, "count", s.len())
	return nil
}

// isLocal reports whether a is currently a local address.
func (w *addrWatcher) isLocal(a netip.Addr) bool { return w.set.Load().contains(a) }
