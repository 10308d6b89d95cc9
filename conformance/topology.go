//go:build linux

package conformance

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"

	"github.com/doorman-project/doorman/internal/netsim"
)

// Host is one host of the topology with its address on the shared LAN.
type Host struct {
	NS    string     // namespace name
	Addr  netip.Addr // IPv4 address on IfName
	Addr6 netip.Addr // IPv6 address on IfName

	lan *netsim.LinkEnd // the host's IfName
}

// Do runs f on a thread switched into h's namespace; sockets f opens stay
// there after it returns.
func (h Host) Do(f func() error) error { return h.lan.Host.Do(f) }

// ifIndex returns the index of h's IfName inside its namespace.
func (h Host) ifIndex() int { return h.lan.IfIndex }

// mac returns the link-layer address of h's IfName.
func (h Host) mac() net.HardwareAddr { return h.lan.MAC }

// IfName is the LAN interface name inside every host namespace. It is not
// a common default (eth0), so an implementation that ignores the
// configured interface cannot pass by accident.
const IfName = "dmcf0"

// OtherIfName is a second interface of the server that the daemon does
// not watch; knocks addressed to its addresses must be ignored
// (CLASSIC-4.4). It is one end of a link to a host of its own, which
// nothing uses.
const OtherIfName = "dmcf1"

// DefaultPrefix starts the topology's namespace names when
// [Options.Prefix] is empty.
const DefaultPrefix = "dmcf"

// Topology is the suite's private network: a server, two clients that are
// guests, and a foreign host that is not, on one LAN without a router.
type Topology struct {
	Server  Host
	Client  Host // first allowed client
	Client2 Host // second allowed client
	Foreign Host // not in the guest list
	// OtherAddr and OtherAddr6 are the addresses of the server's
	// OtherIfName.
	OtherAddr, OtherAddr6 netip.Addr

	net *netsim.Net

	// The TCP listeners on the guests' ports live as long as the topology:
	// binding them again for every run that shares it could meet the
	// previous run's sockets.
	lisOnce sync.Once
	lis     *listeners
	lisErr  error
}

// listen starts the server's listeners once.
func (t *Topology) listen() error {
	t.lisOnce.Do(func() { t.lis, t.lisErr = listen(t.Server, serverPorts()) })
	return t.lisErr
}

// ErrNoPrivilege is returned when namespaces cannot be created (not root).
var ErrNoPrivilege = errors.New("cannot create network namespaces (need root)")

// NewTopology creates the namespaces, named "<prefix>-<8 hex digits>-<host>"
// (prefix "" means DefaultPrefix), after deleting those of earlier runs of
// prefix whose process died. Call Close to remove them; when NewTopology
// fails it has removed what it made.
func NewTopology(ctx context.Context, prefix string) (t *Topology, err error) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	// Errors here concern other runs' leftovers, which must not stop this one.
	_, _ = netsim.Sweep(prefix)
	n, err := netsim.New(ctx, netsim.Options{Prefix: prefix})
	if err != nil {
		return nil, privilege(err)
	}
	t = &Topology{net: n}
	defer func() {
		if err != nil {
			t.Close()
			t, err = nil, privilege(err)
		}
	}()
	lan, err := n.LAN("lan")
	if err != nil {
		return t, err
	}
	for _, h := range []struct {
		name string
		to   *Host
	}{{"srv", &t.Server}, {"cl1", &t.Client}, {"cl2", &t.Client2}, {"frn", &t.Foreign}} {
		sh, err := n.AddHost(h.name)
		if err != nil {
			return t, err
		}
		if err := quietIPv6(sh); err != nil {
			return t, err
		}
		e, err := lan.AttachAs(sh, IfName)
		if err != nil {
			return t, err
		}
		*h.to = Host{NS: sh.NS(), Addr: e.Addr4, Addr6: e.Addr6, lan: e}
	}
	idle, err := n.AddHost("oth")
	if err != nil {
		return t, err
	}
	if err := quietIPv6(idle); err != nil {
		return t, err
	}
	l, err := n.Link(t.Server.lan.Host, idle, netsim.LinkOptions{NameA: OtherIfName})
	if err != nil {
		return t, err
	}
	t.OtherAddr, t.OtherAddr6 = l.A.Addr4, l.A.Addr6
	return t, nil
}

// privilege marks errors of a process that may not create namespaces.
func privilege(err error) error {
	if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return fmt.Errorf("%w: %w", ErrNoPrivilege, err)
	}
	return err
}

// quietIPv6 turns IPv6 on (CLASSIC-2.7) but keeps it quiet: no router
// solicitations or autoconfiguration, so the silence captures see little
// chatter. Interfaces created afterwards take the "default" values.
func quietIPv6(h *netsim.Host) error {
	return h.Do(func() error {
		// /proc/sys/net resolves to the namespace of the opening thread.
		for _, s := range []struct{ key, value string }{
			{"all/disable_ipv6", "0"}, {"default/disable_ipv6", "0"},
			{"default/accept_ra", "0"}, {"default/autoconf", "0"},
			{"default/router_solicitations", "0"},
		} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+s.key, []byte(s.value+"\n"), 0); err != nil {
				return fmt.Errorf("sysctl in %s: %w", h.NS(), err)
			}
		}
		return nil
	})
}

// RunID returns the run id that starts every namespace name of t.
func (t *Topology) RunID() string { return t.net.RunID() }

// Close stops the listeners and deletes every namespace of the topology;
// it returns what it could not delete.
func (t *Topology) Close() error {
	if t == nil {
		return nil
	}
	if t.lis != nil {
		t.lis.Close()
	}
	if t.net == nil {
		return nil
	}
	return t.net.Close()
}
