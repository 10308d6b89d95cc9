//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/coreos/go-iptables/iptables"
)

const iptBackend = "iptables"

// iptWaitSeconds bounds how long one iptables call waits for the xtables lock.
const iptWaitSeconds = 5

// maxLeftoverJumps bounds the loop that removes jumps a crashed run left in
// INPUT (each Start adds one; a crash loop could leave several).
const maxLeftoverJumps = 64

// IPTables is the iptables backend: accept rules in its own chain (iptables
// and ip6tables, table filter), jumped to from the top of INPUT. It shells out
// to the iptables binaries. Safe for concurrent use.
type IPTables struct {
	cfg IPTConfig
	log *slog.Logger

	mu      sync.Mutex // guards the fields below (not held while iptables runs)
	started bool
	fams    [2]*iptFamily // [0] IPv4, [1] IPv6; nil if that family is unavailable
	live    ruleSet[struct{}]
}

// iptFamily is one of iptables / ip6tables.
type iptFamily struct {
	name      string
	ipt       *iptables.IPTables
	connlimit bool
}

// NewIPTables returns an unstarted iptables backend.
func NewIPTables(cfg IPTConfig) *IPTables {
	cfg = cfg.withDefaults()
	return &IPTables{cfg: cfg, log: cfg.Logger}
}

// ConnLimit reports whether broad rules carry the connlimit match (decided by
// Start: the kernel must accept it for IPv4).
func (b *IPTables) ConnLimit() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.fams[0] != nil && b.fams[0].connlimit
}

func (b *IPTables) jumpSpec() []string {
	return []string{"-m", "comment", "--comment", iptComment, "-j", b.cfg.Chain}
}

// Start removes a chain and jumps left by an earlier run, creates the chain,
// checks whether connlimit works, and jumps to the chain from INPUT position 1.
// IPv6 is optional: if ip6tables is missing or fails, IPv6 rules are refused.
func (b *IPTables) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: start: %w", iptBackend, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var fams [2]*iptFamily
	for i, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		name := []string{"iptables", "ip6tables"}[i]
		ipt, err := iptables.New(iptables.IPFamily(proto), iptables.Timeout(iptWaitSeconds))
		if err == nil {
			f := &iptFamily{name: name, ipt: ipt}
			if err = b.startFamily(f); err == nil {
				fams[i] = f
				continue
			}
		}
		if i == 0 {
			return fmt.Errorf("%s: start: %w", iptBackend, err)
		}
		b.log.Warn("IPv6 rules disabled", "err", err)
	}
	b.fams = fams
	b.live.reset()
	b.started = true
	if !fams[0].connlimit && !b.cfg.NoConnLimit {
		b.log.Warn("connlimit match unavailable: a broad rule admits every connection that starts before its narrow rule replaces it")
	}
	return nil
}

func (b *IPTables) startFamily(f *iptFamily) error {
	if err := b.removeFamily(f); err != nil {
		return err
	}
	if err := f.ipt.NewChain("filter", b.cfg.Chain); err != nil {
		return fmt.Errorf("%s: create chain %s: %w", f.name, b.cfg.Chain, err)
	}
	if !b.cfg.NoConnLimit {
		// Probe with the exact match the broad rules use, before the chain is
		// reachable from INPUT.
		mask := map[string]string{"iptables": "32", "ip6tables": "128"}[f.name]
		probe := []string{"-p", "tcp", "-m", "connlimit", "--connlimit-upto", "1", "--connlimit-mask", mask,
			"-m", "comment", "--comment", iptComment + "-probe", "-j", "RETURN"}
		if err := f.ipt.Append("filter", b.cfg.Chain, probe...); err == nil {
			f.connlimit = true
			if err := f.ipt.Delete("filter", b.cfg.Chain, probe...); err != nil {
				return fmt.Errorf("%s: remove connlimit probe: %w", f.name, err)
			}
		} else {
			b.log.Debug("connlimit probe failed", "family", f.name, "err", err)
		}
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

// family returns the iptables flavour for r, or an error.
func (b *IPTables) familyLocked(r Rule) (*iptFamily, error) {
	if !b.started {
		return nil, ErrNotStarted
	}
	f := b.fams[0]
	if !r.is4() {
		f = b.fams[1]
	}
	if f == nil {
		return nil, errors.New("ip6tables unavailable")
	}
	return f, nil
}

// Add appends the rule to the chain.
func (b *IPTables) Add(ctx context.Context, r Rule) error {
	return ruleErr(iptBackend, "add", r, b.add(ctx, r))
}

func (b *IPTables) add(ctx context.Context, r Rule) error {
	if err := r.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	f, err := b.familyLocked(r)
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.ipt.Append("filter", b.cfg.Chain, iptRuleSpec(r, f.connlimit)...); err != nil {
		return err
	}
	b.mu.Lock()
	b.live.push(r, struct{}{})
	b.mu.Unlock()
	return nil
}

// Delete removes one copy of the rule from the chain.
func (b *IPTables) Delete(ctx context.Context, r Rule) error {
	return ruleErr(iptBackend, "delete", r, b.delete(ctx, r))
}

func (b *IPTables) delete(ctx context.Context, r Rule) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	f, err := b.familyLocked(r)
	if err == nil {
		if _, ok := b.live.peek(r); !ok {
			err = ErrUnknownRule
		} else {
			// Taken out before iptables runs, so two racing Deletes of one
			// copy cannot both pass this check.
			b.live.pop(r)
		}
	}
	b.mu.Unlock()
	if err != nil {
		return err
	}
	if err := f.ipt.Delete("filter", b.cfg.Chain, iptRuleSpec(r, f.connlimit)...); err != nil {
		b.mu.Lock()
		b.live.push(r, struct{}{})
		b.mu.Unlock()
		return err
	}
	return nil
}

// Close removes the jumps and the chain with every rule in it. Idempotent.
func (b *IPTables) Close(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: close: %w", iptBackend, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.started {
		return nil
	}
	var errs []error
	for _, f := range b.fams {
		if f != nil {
			errs = append(errs, b.removeFamily(f))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%s: close: %w", iptBackend, err)
	}
	b.live.reset()
	b.started = false
	return nil
}
