//go:build linux

package firewall

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// Blocker is a chain of the host's own firewall that drops what a door
// admits: the accept line for the door mark is missing from it, or comes
// after an unconditional drop. Doors then "open" in doorman's table and the
// client's connection still never arrives.
type Blocker struct {
	Where string // "nftables inet filter input", "iptables INPUT"
	Why   string // "policy drop and no rule accepts the door mark"
	Fix   string // the exact line to add, and where
}

func (b Blocker) String() string { return b.Where + ": " + b.Why + "; add: " + b.Fix }

// InspectInput looks at the host's firewall in the calling thread's
// network namespace for input chains that would drop packets carrying
// mark, and says which line each needs. ownTable is doorman's own table,
// left out. It reads nftables (which shows iptables-nft's rules too) and,
// where iptables is the legacy one, iptables-save's INPUT chains. It sees
// only the usual shapes (a policy drop, an unconditional drop or reject,
// an accept of the mark); a ruleset that drops door traffic some other way
// (a conditional drop that matches it) is not found.
func InspectInput(mark uint32, ownTable string) ([]Blocker, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, err
	}
	chains, err := c.ListChains()
	if err != nil {
		return nil, fmt.Errorf("list nftables chains: %w", err)
	}
	var out []Blocker
	for _, ch := range chains {
		if ch.Table == nil || ch.Hooknum == nil || *ch.Hooknum != *nftables.ChainHookInput {
			continue
		}
		if ch.Table.Name == ownTable && ch.Table.Family == nftables.TableFamilyINet {
			continue
		}
		rules, err := c.GetRules(ch.Table, ch)
		if err != nil {
			return nil, fmt.Errorf("read chain %s: %w", ch.Name, err)
		}
		if why := blocks(ch, rules, mark); why != "" {
			out = append(out, Blocker{Where: "nftables " + familyName(ch.Table.Family) + " " + ch.Table.Name + " " + ch.Name,
				Why: why, Fix: markLine(ch.Table, ch, mark)})
		}
	}
	legacy, err := inspectLegacyIptables(mark)
	if err != nil {
		return out, err
	}
	return append(out, legacy...), nil
}

// blocks says why chain ch drops marked packets, or "".
func blocks(ch *nftables.Chain, rules []*nftables.Rule, mark uint32) string {
	for _, r := range rules {
		switch {
		case acceptsMark(r, mark):
			return ""
		case dropsAll(r):
			return "an unconditional drop comes before any rule that accepts the door mark"
		}
	}
	if ch.Policy != nil && *ch.Policy == nftables.ChainPolicyDrop {
		return "policy drop and no rule accepts the door mark"
	}
	return ""
}

// acceptsMark: meta mark & M == M accept (M covering the door mark).
func acceptsMark(r *nftables.Rule, mark uint32) bool {
	var loadsMark, masked, compared, accepts bool
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Meta:
			loadsMark = loadsMark || (e.Key == expr.MetaKeyMARK && !e.SourceRegister)
		case *expr.Bitwise:
			if len(e.Mask) == 4 && binaryutil.NativeEndian.Uint32(e.Mask)&mark == mark {
				masked = true
			}
		case *expr.Cmp:
			if len(e.Data) == 4 {
				v := binaryutil.NativeEndian.Uint32(e.Data)
				compared = compared || (e.Op == expr.CmpOpEq && v&mark == mark) || (e.Op == expr.CmpOpNeq && v == 0)
			}
		case *expr.Verdict:
			accepts = e.Kind == expr.VerdictAccept
		}
	}
	return loadsMark && masked && compared && accepts
}

// dropsAll: a rule with no match before its drop or reject.
func dropsAll(r *nftables.Rule) bool {
	for _, e := range r.Exprs {
		switch e := e.(type) {
		case *expr.Counter, *expr.Log:
		case *expr.Verdict:
			return e.Kind == expr.VerdictDrop
		case *expr.Reject:
			return true
		default:
			return false
		}
	}
	return false
}

func familyName(f nftables.TableFamily) string {
	switch f {
	case nftables.TableFamilyINet:
		return "inet"
	case nftables.TableFamilyIPv4:
		return "ip"
	case nftables.TableFamilyIPv6:
		return "ip6"
	}
	return fmt.Sprint(f)
}

// markLine is the line that accepts the door mark in chain ch, placed
// before its drops (iptables-nft's tables get the iptables command).
func markLine(t *nftables.Table, ch *nftables.Chain, mark uint32) string {
	if t.Name == "filter" && (t.Family == nftables.TableFamilyIPv4 || t.Family == nftables.TableFamilyIPv6) && ch.Name == "INPUT" {
		ipt := "iptables"
		if t.Family == nftables.TableFamilyIPv6 {
			ipt = "ip6tables"
		}
		return fmt.Sprintf("%s -I INPUT -m mark --mark %#08x/%#08x -j ACCEPT", ipt, mark, mark)
	}
	return fmt.Sprintf("nft insert rule %s %s %s meta mark \\& %#08x == %#08x accept", familyName(t.Family), t.Name, ch.Name, mark, mark)
}

// inspectLegacyIptables reads legacy iptables' INPUT chains, which
// nftables does not show. Where iptables is iptables-nft (or missing) it
// has nothing to add.
func inspectLegacyIptables(mark uint32) ([]Blocker, error) {
	var out []Blocker
	for _, bin := range []string{"iptables-legacy-save", "ip6tables-legacy-save"} {
		path, err := exec.LookPath(bin)
		if err != nil {
			continue
		}
		b, err := exec.Command(path, "-t", "filter").Output()
		if err != nil || !bytes.Contains(b, []byte(":INPUT")) {
			continue // no legacy tables loaded
		}
		if why := legacyBlocks(string(b), mark); why != "" {
			ipt := strings.TrimSuffix(strings.TrimSuffix(bin, "-legacy-save"), "-save")
			out = append(out, Blocker{Where: ipt + " (legacy) INPUT", Why: why,
				Fix: fmt.Sprintf("%s -I INPUT -m mark --mark %#08x/%#08x -j ACCEPT", ipt, mark, mark)})
		}
	}
	return out, nil
}

// legacyBlocks reads iptables-save output for table filter.
func legacyBlocks(save string, mark uint32) string {
	policyDrop := false
	want := fmt.Sprintf("--mark %#x/%#x", mark, mark)
	for _, l := range strings.Split(save, "\n") {
		switch {
		case strings.HasPrefix(l, ":INPUT DROP"):
			policyDrop = true
		case strings.HasPrefix(l, "-A INPUT ") && strings.Contains(l, want) && strings.HasSuffix(l, "-j ACCEPT"):
			return ""
		case l == "-A INPUT -j DROP" || l == "-A INPUT -j REJECT" || strings.HasPrefix(l, "-A INPUT -j REJECT "):
			return "an unconditional drop comes before any rule that accepts the door mark"
		}
	}
	if policyDrop {
		return "policy drop and no rule accepts the door mark"
	}
	return ""
}
