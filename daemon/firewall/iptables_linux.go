//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-iptables/iptables"
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// iptWaitSeconds bounds how long one iptables call waits for the xtables lock.
const iptWaitSeconds = 5

// maxLeftoverJumps bounds the loop that removes jumps a crashed run left in
// INPUT (each Start adds one; a crash loop could leave several).
const maxLeftoverJumps = 64

// How often the backend checks that its chain and jump are still in
// place: every second where iptables is iptables-nft (the check reads the
// kernel's tables over netlink, cheaply), every two seconds with legacy
// iptables (the check runs iptables twice per family).
const (
	iptWatchNFT    = time.Second
	iptWatchLegacy = 2 * time.Second
)

// IPTables is the backend for hosts whose firewall is iptables (or
// iptables-nft): the doors themselves live in doorman's nftables table
// (see NFTables), which marks every packet a door admits, and an iptables
// chain DOORMAN, jumped to from the top of INPUT (iptables and ip6tables),
// accepts marked packets:
//
//	-A INPUT -m comment --comment doorman -j DOORMAN
//	-A DOORMAN -m mark --mark 0x100000/0x100000 -m comment --comment doorman -j ACCEPT
//
// So the admin adds nothing, and one connection per door is enforced by the
// kernel in the nftables table whatever the iptables rules say. The chain
// and jump are checked every couple of seconds and put back if an
// iptables-restore removed them. Safe for concurrent use.
type IPTables struct {
	cfg   IPTConfig
	log   *slog.Logger
	doors *NFTables

	mu      sync.Mutex // guards the fields below; not held while iptables runs in Apply
	started bool
	fams    [2]*iptFamily // [0] IPv4, [1] IPv6; nil if that family is unavailable
	ns      nsPin
	stop    chan struct{}
	done    chan struct{}
	notify  Notify
	nft     *nftables.Conn // lasting, in Start's namespace: reads iptables-nft's tables
}

// iptFamily is one of iptables / ip6tables.
type iptFamily struct {
	name string
	ipt  *iptables.IPTables
	fam  nftables.TableFamily
	// viaNFT: this iptables is iptables-nft, so its rules can be read
	// over netlink (set by Start when it finds the chain it made there).
	viaNFT bool
}

// NewIPTables returns an unstarted iptables backend.
func NewIPTables(cfg IPTConfig) *IPTables {
	cfg = cfg.withDefaults()
	return &IPTables{cfg: cfg, log: cfg.Logger, doors: NewNFTables(cfg.Doors)}
}

func (b *IPTables) jumpSpec() []string {
	return []string{"-m", "comment", "--comment", iptComment, "-j", b.cfg.Chain}
}

func (b *IPTables) acceptSpec() []string {
	m := fmt.Sprintf("%#x/%#x", b.cfg.Doors.Mark, b.cfg.Doors.Mark)
	return []string{"-m", "mark", "--mark", m, "-m", "comment", "--comment", iptComment, "-j", "ACCEPT"}
}

// Start starts the doors' nftables table, then removes a chain and jumps
// left by an earlier run and installs fresh ones. IPv6 is optional: if
// ip6tables is missing or fails, only IPv4 doors are let in by iptables
// (a warning says so).
func (b *IPTables) Start(ctx context.Context, notify Notify) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: start: %w", iptBackend, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return fmt.Errorf("%s: start: already started", iptBackend)
	}
	ns, err := pinNS()
	if err != nil {
		return fmt.Errorf("%s: start: %w", iptBackend, err)
	}
	var fams [2]*iptFamily
	for i, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		name := []string{"iptables", "ip6tables"}[i]
		ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Timeout(iptWaitSeconds))
		if err == nil {
			f := &iptFamily{name: name, ipt: ipt, fam: []nftables.TableFamily{nftables.TableFamilyIPv4, nftables.TableFamilyIPv6}[i]}
			if err = b.startFamily(f); err == nil {
				fams[i] = f
				continue
			}
		}
		if i == 0 {
			ns.close()
			return fmt.Errorf("%s: start: %w", iptBackend, err)
		}
		b.log.Warn("IPv6 doors are not let in by ip6tables", "err", err)
	}
	if err := b.doors.Start(ctx, notify); err != nil {
		for _, f := range fams {
			if f != nil {
				_ = b.removeFamily(f)
			}
		}
		ns.close()
		return fmt.Errorf("%s: start: %w", iptBackend, err)
	}
	b.fams, b.ns, b.notify = fams, ns, notify
	every := iptWatchLegacy
	if conn, err := nftables.New(nftables.AsLasting()); err == nil {
		b.nft = conn
		nftAll := true
		for _, f := range fams {
			if f != nil {
				ok, err := b.intactNFT(f)
				f.viaNFT = err == nil && ok
				nftAll = nftAll && f.viaNFT
			}
		}
		if nftAll {
			every = iptWatchNFT
		}
	}
	b.stop, b.done = make(chan struct{}), make(chan struct{})
	b.started = true
	go b.routineWatch(b.stop, b.done, every)
	return nil
}

func (b *IPTables) startFamily(f *iptFamily) error {
	if err := b.removeFamily(f); err != nil {
		return err
	}
	if err := f.ipt.NewChain("filter", b.cfg.Chain); err != nil {
		return fmt.Errorf("%s: create chain %s: %w", f.name, b.cfg.Chain, err)
	}
	if err := f.ipt.Append("filter", b.cfg.Chain, b.acceptSpec()...); err != nil {
		return fmt.Errorf("%s: add mark rule to %s: %w", f.name, b.cfg.Chain, err)
	}
	if err := f.ipt.Insert("filter", "INPUT", 1, b.jumpSpec()...); err != nil {
		return fmt.Errorf("%s: insert jump to %s: %w", f.name, b.cfg.Chain, err)
	}
	return nil
}

// removeFamily deletes the jumps from INPUT (with or without our comment) and
// the chain with its rules. Missing pieces are not errors.
func (b *IPTables) removeFamily(f *iptFamily) error {
	for _, spec := range [][]string{b.jumpSpec(), {"-j", b.cfg.Chain}} {
		for range maxLeftoverJumps {
			ok, err := f.ipt.Exists("filter", "INPUT", spec...)
			if err != nil || !ok {
				break // an error here means the chain is gone: nothing jumps to it
			}
			if err := f.ipt.Delete("filter", "INPUT", spec...); err != nil {
				return fmt.Errorf("%s: delete jump to %s: %w", f.name, b.cfg.Chain, err)
			}
		}
	}
	exists, err := f.ipt.ChainExists("filter", b.cfg.Chain)
	if err != nil {
		return fmt.Errorf("%s: list chains: %w", f.name, err)
	}
	if exists {
		if err := f.ipt.ClearAndDeleteChain("filter", b.cfg.Chain); err != nil {
			return fmt.Errorf("%s: delete chain %s: %w", f.name, b.cfg.Chain, err)
		}
	}
	return nil
}

// intact reports whether the family's jump and mark rule are in place.
func (b *IPTables) intact(f *iptFamily) (bool, error) {
	rules, err := f.ipt.List("filter", "INPUT")
	if err != nil {
		return false, err
	}
	jump := false
	for _, r := range rules {
		if strings.Contains(r, "-j "+b.cfg.Chain) {
			jump = true
			break
		}
	}
	if !jump {
		return false, nil
	}
	return f.ipt.Exists("filter", b.cfg.Chain, b.acceptSpec()...)
}

// intactNFT is intact for iptables-nft, read over netlink: INPUT of table
// filter jumps to the chain, and the chain holds a rule.
func (b *IPTables) intactNFT(f *iptFamily) (bool, error) {
	t := &nftables.Table{Name: "filter", Family: f.fam}
	input, err := b.nft.GetRules(t, &nftables.Chain{Name: "INPUT", Table: t})
	if err != nil {
		return false, err
	}
	jump := false
	for _, r := range input {
		for _, e := range r.Exprs {
			if v, ok := e.(*expr.Verdict); ok && v.Kind == expr.VerdictJump && v.Chain == b.cfg.Chain {
				jump = true
			}
		}
	}
	if !jump {
		return false, nil
	}
	own, err := b.nft.GetRules(t, &nftables.Chain{Name: b.cfg.Chain, Table: t})
	return err == nil && len(own) > 0, nil
}

// routineWatch puts the chain and jump back when they disappear.
func (b *IPTables) routineWatch(stop, done chan struct{}, every time.Duration) {
	defer close(done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		b.mu.Lock()
		fams, ns, notify := b.fams, b.ns, b.notify
		b.mu.Unlock()
		for _, f := range fams {
			if f == nil {
				continue
			}
			var ok bool
			var err error
			if f.viaNFT {
				// A missing table or chain reads as an error: not intact.
				ok, _ = b.intactNFT(f)
			} else {
				err = ns.do(func() (err error) { ok, err = b.intact(f); return err })
			}
			if err != nil || ok {
				if err != nil {
					notify.fault(Fault{Op: "check " + f.name + " chain " + b.cfg.Chain, Err: err})
				}
				continue
			}
			gone := fmt.Errorf("%s chain %s or its jump from INPUT was removed (a firewall reload?)", f.name, b.cfg.Chain)
			if err := ns.do(func() error { return b.startFamily(f) }); err != nil {
				notify.fault(Fault{Op: "restore " + f.name + " chain", Err: errors.Join(gone, err)})
				continue
			}
			notify.fault(Fault{Op: "restore " + f.name + " chain", Err: gone, Repaired: true})
		}
	}
}

// Apply applies door changes to the doors' table.
func (b *IPTables) Apply(ctx context.Context, doors []Door) []error {
	return b.doors.Apply(ctx, doors)
}

// Close removes the jumps and the chain and then the doors' table.
// Idempotent.
func (b *IPTables) Close(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: close: %w", iptBackend, err)
	}
	b.mu.Lock()
	if !b.started {
		b.mu.Unlock()
		return nil
	}
	b.started = false
	stop, done := b.stop, b.done
	b.mu.Unlock()
	close(stop)
	<-done

	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, f := range b.fams {
		if f != nil {
			errs = append(errs, b.removeFamily(f))
		}
	}
	errs = append(errs, b.doors.Close(ctx))
	b.ns.close()
	if b.nft != nil {
		b.nft.CloseLasting()
		b.nft = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", iptBackend, err)
	}
	return nil
}

// Packets reports the packets of a door's claimed connection (see
// NFTables.Packets).
func (b *IPTables) Packets(ctx context.Context, d Door) (uint64, error) {
	return b.doors.Packets(ctx, d)
}
