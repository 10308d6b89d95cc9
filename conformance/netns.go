//go:build linux

package conformance

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netns"
)

// Host is one namespace of the topology with its address on the shared LAN.
type Host struct {
	NS    string     // namespace name
	Addr  netip.Addr // IPv4 address on IfName
	Addr6 netip.Addr // IPv6 address on IfName
}

// IfName is the LAN interface name inside every host namespace.
const IfName = "dmcf0"

// OtherIfName is a second interface of the server that the daemon does
// not watch; knocks addressed to its addresses must be ignored
// (CLASSIC-4.4). It is one end of a veth pair whose other end, also in
// the server namespace, is otherIfPeer (the dummy driver is not
// everywhere).
const (
	OtherIfName = "dmcf1"
	otherIfPeer = "dmcf1p"
)

// Addresses of OtherIfName.
var (
	otherAddr  = netip.MustParseAddr("198.18.1.1")
	otherAddr6 = netip.MustParseAddr("2001:db8:1::1")
)

// Topology is the suite's private network: a server, two clients that are
// guests, and a foreign host that is not, on one bridge.
type Topology struct {
	Prefix  string
	Server  Host
	Client  Host // first allowed client
	Client2 Host // second allowed client
	Foreign Host // not in the guest list
	lan     string

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

// NewPrefix returns "dmcf-" plus a random suffix.
func NewPrefix() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "dmcf-" + hex.EncodeToString(b[:])
}

func ipCmd(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// NewTopology creates the namespaces. Call Close to remove them, also when
// NewTopology fails half way (it cleans up after itself then).
func NewTopology(ctx context.Context, prefix string) (t *Topology, err error) {
	t = &Topology{Prefix: prefix, lan: prefix + "-lan",
		Server:  newHost(prefix+"-srv", "198.18.0.1", "2001:db8::1"),
		Client:  newHost(prefix+"-cl1", "198.18.0.2", "2001:db8::2"),
		Client2: newHost(prefix+"-cl2", "198.18.0.3", "2001:db8::3"),
		Foreign: newHost(prefix+"-frn", "198.18.0.4", "2001:db8::4"),
	}
	defer func() {
		if err != nil {
			t.Close()
			t = nil
		}
	}()
	if err := ipCmd(ctx, "netns", "add", t.lan); err != nil {
		if strings.Contains(err.Error(), "ermission") || strings.Contains(err.Error(), "EPERM") {
			return t, fmt.Errorf("%w: %v", ErrNoPrivilege, err)
		}
		return t, err
	}
	steps := [][]string{
		{"-n", t.lan, "link", "add", "br0", "type", "bridge"},
		// Without snooping the bridge floods multicast, so neighbour
		// solicitations reach every port from the first packet on.
		{"-n", t.lan, "link", "set", "br0", "type", "bridge", "mcast_snooping", "0"},
		{"-n", t.lan, "link", "set", "br0", "up"},
		{"-n", t.lan, "link", "set", "lo", "up"},
	}
	for i, h := range t.hosts() {
		port := fmt.Sprintf("p%d", i)
		steps = append(steps, [][]string{
			{"link", "add", port, "netns", t.lan, "type", "veth", "peer", "name", IfName, "netns", h.NS},
			{"-n", t.lan, "link", "set", port, "master", "br0"},
			{"-n", t.lan, "link", "set", port, "up"},
			{"-n", h.NS, "addr", "add", h.Addr.String() + "/24", "dev", IfName},
			// nodad: usable at once instead of after duplicate detection.
			{"-n", h.NS, "addr", "add", h.Addr6.String() + "/64", "dev", IfName, "nodad"},
			{"-n", h.NS, "link", "set", IfName, "up"},
			{"-n", h.NS, "link", "set", "lo", "up"},
		}...)
	}
	for _, h := range t.hosts() {
		if err := ipCmd(ctx, "netns", "add", h.NS); err != nil {
			return t, err
		}
		// IPv6 on (CLASSIC-2.7), but quiet: no router solicitations or
		// autoconfiguration, so the silence captures see little chatter.
		// The new interfaces take the "default" values.
		if err := sysctls(ctx, h.NS,
			"net.ipv6.conf.all.disable_ipv6=0", "net.ipv6.conf.default.disable_ipv6=0",
			"net.ipv6.conf.default.accept_ra=0", "net.ipv6.conf.default.autoconf=0",
			"net.ipv6.conf.default.router_solicitations=0"); err != nil {
			return t, err
		}
	}
	steps = append(steps, [][]string{
		{"-n", t.Server.NS, "link", "add", OtherIfName, "type", "veth", "peer", "name", otherIfPeer},
		{"-n", t.Server.NS, "link", "set", otherIfPeer, "up"},
		{"-n", t.Server.NS, "addr", "add", otherAddr.String() + "/24", "dev", OtherIfName},
		{"-n", t.Server.NS, "addr", "add", otherAddr6.String() + "/64", "dev", OtherIfName, "nodad"},
		{"-n", t.Server.NS, "link", "set", OtherIfName, "up"},
	}...)
	for _, s := range steps {
		if err := ipCmd(ctx, s...); err != nil {
			return t, err
		}
	}
	for _, h := range t.hosts() {
		if err := waitIPv6(ctx, h); err != nil {
			return t, err
		}
	}
	return t, nil
}

func newHost(ns, v4, v6 string) Host {
	return Host{NS: ns, Addr: netip.MustParseAddr(v4), Addr6: netip.MustParseAddr(v6)}
}

func sysctls(ctx context.Context, ns string, settings ...string) error {
	args := append([]string{"netns", "exec", ns, "sysctl", "-qw"}, settings...)
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("sysctl in %s: %w: %s", ns, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// ipv6Wait bounds how long waitIPv6 polls; nodad addresses are usually
// ready at once.
const ipv6Wait = 10 * time.Second

// waitIPv6 waits until h's IPv6 address is no longer tentative and has a
// route, so the first probe over IPv6 is not lost.
func waitIPv6(ctx context.Context, h Host) error {
	ctx, cancel := context.WithTimeout(ctx, ipv6Wait)
	defer cancel()
	for {
		addrs, aerr := exec.CommandContext(ctx, "ip", "-n", h.NS, "-6", "addr", "show", "dev", IfName, "tentative").Output()
		route, rerr := exec.CommandContext(ctx, "ip", "-n", h.NS, "-6", "route", "show", "dev", IfName).Output()
		if aerr == nil && rerr == nil && len(bytes.TrimSpace(addrs)) == 0 && bytes.Contains(route, []byte("2001:db8::/64")) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: IPv6 address %s not ready: tentative=%q route=%q", h.NS, h.Addr6, bytes.TrimSpace(addrs), bytes.TrimSpace(route))
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (t *Topology) hosts() []Host { return []Host{t.Server, t.Client, t.Client2, t.Foreign} }

// Close deletes every namespace the topology created; errors are ignored
// because a namespace may not have been created.
func (t *Topology) Close() {
	if t == nil {
		return
	}
	if t.lis != nil {
		t.lis.Close()
	}
	for _, n := range append([]string{t.lan}, t.Server.NS, t.Client.NS, t.Client2.NS, t.Foreign.NS) {
		_ = exec.Command("ip", "netns", "del", n).Run()
	}
}

// InNS runs f on an OS thread switched into namespace name. Sockets that f
// opens stay in that namespace after it returns.
func InNS(name string, f func() error) error {
	type res struct{ err error }
	ch := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{fmt.Errorf("netns get: %w", err)}
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- res{fmt.Errorf("netns %s: %w", name, err)}
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			runtime.UnlockOSThread()
			ch <- res{fmt.Errorf("enter netns %s: %w", name, err)}
			return
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			// The thread is tainted: keep it locked so it dies with the goroutine.
			ch <- res{errors.Join(ferr, fmt.Errorf("leave netns %s: %w", name, err))}
			return
		}
		runtime.UnlockOSThread()
		ch <- res{ferr}
	}()
	return (<-ch).err
}
