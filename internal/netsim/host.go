//go:build linux

package netsim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"sync"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Host is a virtual host: one network namespace of the run.
type Host struct {
	net    *Net
	name   string
	ns     string
	hidden bool // a LAN's switch
	handle netns.NsHandle
	nl     *netlink.Handle

	mu    sync.Mutex
	ifSeq int
	addr4 netip.Addr
	addr6 netip.Addr
}

// AddHost creates a host, a fresh namespace named "<runid>-<name>" with its
// loopback up. Names are 1-32 characters of a-z, 0-9, '-' and '_',
// starting with a letter or digit.
func (n *Net) AddHost(name string) (*Host, error) {
	if !nameRE.MatchString(name) {
		return nil, fmt.Errorf("%w: host %q", ErrBadName, name)
	}
	n.mu.Lock()
	if err := n.checkOpenLocked(); err != nil {
		n.mu.Unlock()
		return nil, err
	}
	if _, ok := n.hosts[name]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("%w: host %q", ErrExists, name)
	}
	n.hosts[name] = nil // reserve
	n.mu.Unlock()

	h, err := n.newHost(name, n.runID+"-"+name, false)
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		delete(n.hosts, name)
		return nil, err
	}
	n.hosts[name] = h
	return h, nil
}

// Host returns the host called name, or nil.
func (n *Net) Host(name string) *Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.hosts[name]
}

// newHost creates namespace nsName and registers it for Close before
// configuring it, so a half-built host is still deleted.
func (n *Net) newHost(name, nsName string, hidden bool) (*Host, error) {
	h := &Host{net: n, name: name, ns: nsName, hidden: hidden, handle: -1}
	err := onThread(func() error {
		ns, err := netns.NewNamed(nsName)
		if err != nil {
			return fmt.Errorf("netsim: create netns %s: %w", nsName, err)
		}
		h.handle = ns
		return nil
	})
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil, errors.Join(ErrClosed, h.destroy())
	}
	n.all = append(n.all, h)
	n.mu.Unlock()

	if h.nl, err = netlink.NewHandleAt(h.handle); err != nil {
		return nil, fmt.Errorf("netsim: netlink in %s: %w", nsName, err)
	}
	lo, err := h.nl.LinkByName("lo")
	if err == nil {
		err = h.nl.LinkSetUp(lo)
	}
	if err != nil {
		return nil, fmt.Errorf("netsim: loopback up in %s: %w", nsName, err)
	}
	err = h.Do(func() error {
		// Link-local addresses would otherwise stay tentative (DAD) for a
		// second or two after each interface comes up, and neighbour
		// discovery stalls until they are usable.
		for _, p := range []string{"/proc/sys/net/ipv6/conf/default/accept_dad", "/proc/sys/net/ipv6/conf/all/accept_dad"} {
			if err := os.WriteFile(p, []byte("0\n"), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("netsim: disable DAD in %s: %w", nsName, err)
	}
	n.log.Debug("host created", "host", name, "netns", nsName)
	return h, nil
}

// destroy closes the host's handles and deletes its namespace. A namespace
// that is already gone counts as deleted.
func (h *Host) destroy() error {
	if h.nl != nil {
		h.nl.Close()
	}
	if h.handle >= 0 {
		h.handle.Close()
	}
	err := netns.DeleteNamed(h.ns)
	if err == nil || errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EINVAL) {
		_ = os.Remove("/run/netns/" + h.ns)
		return nil
	}
	return fmt.Errorf("netsim: delete netns %s: %w", h.ns, err)
}

// Name returns the host name given to AddHost.
func (h *Host) Name() string { return h.name }

// NS returns the namespace name, usable with `ip netns exec`.
func (h *Host) NS() string { return h.ns }

// Addr4 returns the host's primary IPv4 address (that of its first link), or
// the zero Addr if it has no link yet.
func (h *Host) Addr4() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr4
}

// Addr6 returns the host's primary IPv6 address (that of its first link), or
// the zero Addr if it has no link yet.
func (h *Host) Addr6() netip.Addr {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.addr6
}

// Do runs fn on a locked OS thread switched into the host's namespace and
// switches back afterwards. Sockets fn opens stay in the host's namespace
// and may be used after Do returns; goroutines fn starts do not run in it.
func (h *Host) Do(fn func() error) error {
	h.net.mu.Lock()
	closed := h.net.closed
	h.net.mu.Unlock()
	if closed {
		return ErrClosed
	}
	return inNS(h.handle, fn)
}

// Command returns a command that runs name with args inside the host via
// `ip netns exec`. Close kills it if it is still running then (only the
// process itself, not children it forked). The process is also killed if
// the thread that started it exits, which covers a crashed test binary.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.ns, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	h.net.mu.Lock()
	h.net.commands = append(h.net.commands, cmd)
	h.net.mu.Unlock()
	return cmd
}

// nextIfName returns the next free interface name in the host with the
// given stem ("eth", "tun", "mv").
func (h *Host) nextIfName(stem string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	name := fmt.Sprintf("%s%d", stem, h.ifSeq)
	h.ifSeq++
	return name
}

// ifName returns chosen if it is set, else the next automatic name with
// the given stem.
func (h *Host) ifName(chosen, stem string) string {
	if chosen != "" {
		return chosen
	}
	return h.nextIfName(stem)
}

// ifNameRE is a conservative subset of what the kernel accepts: it also
// keeps names safe in `ip` commands and configuration files.
var ifNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_.-]{0,14}$`)

// ValidIfName reports whether name may be chosen for an interface: 1-15
// characters of letters, digits, '_', '.' and '-', starting with a letter.
func ValidIfName(name string) bool { return ifNameRE.MatchString(name) }

// checkIfName accepts "" (automatic) and valid names.
func checkIfName(name string) error {
	if name != "" && !ValidIfName(name) {
		return fmt.Errorf("%w: interface %q", ErrBadName, name)
	}
	return nil
}

// AddRoute adds or replaces a route to dst via the gateway via. A dst of
// length 0 (0.0.0.0/0 or ::/0) is the default route.
func (h *Host) AddRoute(dst netip.Prefix, via netip.Addr) error {
	if !dst.IsValid() || !via.IsValid() || dst.Addr().Is4() != via.Is4() {
		return fmt.Errorf("netsim: route %v via %v: invalid or mixed families", dst, via)
	}
	fam := unix.AF_INET6
	if via.Is4() {
		fam = unix.AF_INET
	}
	r := &netlink.Route{Family: fam, Dst: ipNet(dst.Masked()), Gw: net.IP(via.AsSlice())}
	if err := h.nl.RouteReplace(r); err != nil {
		return fmt.Errorf("netsim: route %v via %v in %s: %w", dst, via, h.name, err)
	}
	return nil
}

// SetDefaultRoutes points the host's IPv4 and IPv6 default routes at the
// given gateways; an invalid gateway skips that family.
func (h *Host) SetDefaultRoutes(gw4, gw6 netip.Addr) error {
	var errs []error
	if gw4.IsValid() {
		errs = append(errs, h.AddRoute(netip.PrefixFrom(netip.IPv4Unspecified(), 0), gw4))
	}
	if gw6.IsValid() {
		errs = append(errs, h.AddRoute(netip.PrefixFrom(netip.IPv6Unspecified(), 0), gw6))
	}
	return errors.Join(errs...)
}

// SetForwarding turns IPv4 and IPv6 forwarding in the host on or off.
func (h *Host) SetForwarding(on bool) error {
	v := []byte("0\n")
	if on {
		v = []byte("1\n")
	}
	return h.Do(func() error {
		// /proc/sys/net resolves to the namespace of the opening thread.
		for _, p := range []string{"/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile(p, v, 0); err != nil {
				return fmt.Errorf("netsim: forwarding in %s: %w", h.name, err)
			}
		}
		return nil
	})
}

// ipNet converts a prefix to the net.IPNet netlink wants.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
