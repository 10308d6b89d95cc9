//go:build linux

package netsim

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"sync"

	"github.com/vishvananda/netns"
)

// DefaultPrefix is the run prefix used when [Options.Prefix] is empty.
const DefaultPrefix = "dmsim"

// Errors callers may want to tell apart.
var (
	// ErrClosed is returned by operations on a Net that has been closed.
	ErrClosed = errors.New("netsim: network closed")
	// ErrBadName is returned for a prefix, host or LAN name that is not allowed.
	ErrBadName = errors.New("netsim: invalid name")
	// ErrExists is returned when a host or LAN name is already taken.
	ErrExists = errors.New("netsim: name already in use")
	// ErrAddressSpace is returned when 198.18.0.0/15 has no free /24 left
	// or a subnet has no free host address.
	ErrAddressSpace = errors.New("netsim: address space exhausted")
	// ErrNotEthernet is returned for Ethernet-only operations on a raw-IP (tun) end.
	ErrNotEthernet = errors.New("netsim: link end has no Ethernet framing")
	// ErrNoArtifacts is returned by Record for a relative file when Options.Artifacts is empty.
	ErrNoArtifacts = errors.New("netsim: no artifacts directory configured")
)

var (
	prefixRE = regexp.MustCompile(`^[a-z][a-z0-9]{0,15}$`)
	nameRE   = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,31}$`)
)

// Options configure a simulation run. The zero value is valid.
type Options struct {
	// Prefix starts the run id and every namespace name. It must be
	// lower-case letters and digits, starting with a letter, at most 16
	// characters. Empty means DefaultPrefix.
	Prefix string
	// Artifacts is a directory for pcaps and logs; "" means none.
	Artifacts string
	// Logger receives debug and warning messages; nil discards them.
	Logger *slog.Logger
}

// Net is one simulation run: the hosts, links and helpers it created.
// Its methods are safe for concurrent use.
type Net struct {
	prefix    string
	runID     string
	artifacts string
	log       *slog.Logger
	lock      *os.File // held flock on /run/<prefix>/<runid>.pid
	lockPath  string
	stopCtx   func() bool

	closeOnce sync.Once
	closeErr  error

	mu       sync.Mutex
	closed   bool
	hosts    map[string]*Host
	all      []*Host // hosts and hidden switches, in creation order
	lans     map[string]*LAN
	subnets  int
	relays   []*relay
	stops    []func() error // recorders
	commands []*exec.Cmd
}

// New starts a run: it picks a run id, records the run for Sweep and returns
// an empty network. When ctx is done the network is closed; callers should
// still call Close (it is idempotent).
func New(ctx context.Context, opts Options) (*Net, error) {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(prefix) {
		return nil, fmt.Errorf("%w: prefix %q", ErrBadName, prefix)
	}
	var rnd [4]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("netsim: run id: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Net{
		prefix:    prefix,
		runID:     prefix + "-" + hex.EncodeToString(rnd[:]),
		artifacts: opts.Artifacts,
		hosts:     map[string]*Host{},
		lans:      map[string]*LAN{},
	}
	n.log = log.With("run", n.runID)
	lock, path, err := registerRun(prefix, n.runID)
	if err != nil {
		return nil, err
	}
	n.lock, n.lockPath = lock, path
	n.stopCtx = context.AfterFunc(ctx, func() { _ = n.Close() })
	n.log.Debug("sim run started")
	return n, nil
}

// RunID returns the run id, "<prefix>-<8 hex digits>"; every namespace of
// the run is named "<runid>-<something>".
func (n *Net) RunID() string { return n.runID }

// Hosts returns the visible hosts in creation order.
func (n *Net) Hosts() []*Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	var hs []*Host
	for _, h := range n.all {
		if !h.hidden {
			hs = append(hs, h)
		}
	}
	return hs
}

// Close stops recorders, relays and commands started with Host.Command,
// and deletes every namespace of the run, continuing past failures and
// returning them joined. Calling it again returns the first result.
func (n *Net) Close() error {
	n.closeOnce.Do(func() { n.closeErr = n.close() })
	return n.closeErr
}

func (n *Net) close() error {
	if n.stopCtx != nil {
		n.stopCtx()
	}
	n.mu.Lock()
	n.closed = true
	stops, relays, cmds, hosts := n.stops, n.relays, n.commands, n.all
	n.stops, n.relays, n.commands, n.all = nil, nil, nil, nil
	n.mu.Unlock()

	var errs []error
	for _, stop := range stops {
		if err := stop(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, r := range relays {
		r.close()
	}
	for _, c := range cmds {
		// os.Process is safe against a concurrent Wait and refuses to
		// signal a reaped process, so a recycled pid is never hit.
		if p := c.Process; p != nil {
			if err := p.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				errs = append(errs, fmt.Errorf("netsim: kill %s: %w", c.Path, err))
			}
		}
	}
	for i := len(hosts) - 1; i >= 0; i-- {
		if err := hosts[i].destroy(); err != nil {
			errs = append(errs, err)
		}
	}
	if n.lock != nil {
		if err := os.Remove(n.lockPath); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("netsim: remove run record: %w", err))
		}
		n.lock.Close() // releases the flock
	}
	err := errors.Join(errs...)
	if err != nil {
		n.log.Warn("sim close incomplete", "err", err)
	} else {
		n.log.Debug("sim run closed")
	}
	return err
}

// checkOpenLocked returns ErrClosed once Close has started. Callers hold n.mu.
func (n *Net) checkOpenLocked() error {
	if n.closed {
		return ErrClosed
	}
	return nil
}

// subnet is one /24 + /64 pair handed to a link or LAN.
type subnet struct {
	p4, p6 netip.Prefix
	mu     sync.Mutex
	next   int
}

// maxSubnets is the number of /24s in 198.18.0.0/15; index 0 is unused.
const maxSubnets = 512

// allocSubnet hands out the next /24 and /64.
func (n *Net) allocSubnet() (*subnet, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.checkOpenLocked(); err != nil {
		return nil, err
	}
	if n.subnets+1 >= maxSubnets {
		return nil, ErrAddressSpace
	}
	n.subnets++
	return subnetAt(n.subnets), nil
}

// subnetAt returns subnet number i (1 ≤ i < 512): 198.18.0.0/15 split into
// /24s, and 2001:db8:0:i::/64.
func subnetAt(i int) *subnet {
	v4 := netip.AddrFrom4([4]byte{198, byte(18 + i/256), byte(i % 256), 0})
	var b6 [16]byte
	copy(b6[:], []byte{0x20, 0x01, 0x0d, 0xb8, 0, 0, byte(i >> 8), byte(i)})
	return &subnet{
		p4:   netip.PrefixFrom(v4, 24),
		p6:   netip.PrefixFrom(netip.AddrFrom16(b6), 64),
		next: 1,
	}
}

// alloc returns the next host address pair of the subnet, as prefixes with
// the subnet's length.
func (s *subnet) alloc() (netip.Prefix, netip.Prefix, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next > 254 {
		return netip.Prefix{}, netip.Prefix{}, ErrAddressSpace
	}
	i := s.next
	s.next++
	b4 := s.p4.Addr().As4()
	b4[3] = byte(i)
	b6 := s.p6.Addr().As16()
	b6[15] = byte(i)
	return netip.PrefixFrom(netip.AddrFrom4(b4), 24), netip.PrefixFrom(netip.AddrFrom16(b6), 64), nil
}

// onThread runs fn on a locked OS thread and restores the thread's network
// namespace afterwards. fn may switch namespaces freely.
func onThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("netsim: current netns: %w", err)
			return
		}
		defer orig.Close()
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			// Stay locked: the runtime then retires this thread when the
			// goroutine exits, so nothing else runs in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("netsim: restore netns: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// inNS runs fn on a locked OS thread switched into ns.
func inNS(ns netns.NsHandle, fn func() error) error {
	return onThread(func() error {
		if err := netns.Set(ns); err != nil {
			return fmt.Errorf("netsim: enter netns: %w", err)
		}
		return fn()
	})
}
