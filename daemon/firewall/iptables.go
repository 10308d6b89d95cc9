package firewall

import (
	"log/slog"
	"strconv"
)

// DefaultIPTChain is the default name of the iptables backend's chain.
const DefaultIPTChain = "DOORMAN"

// IPTConfig configures the iptables backend. The zero value means defaults.
type IPTConfig struct {
	// Chain is the backend's own chain in table filter (iptables and
	// ip6tables), jumped to from INPUT position 1; default "DOORMAN". Start
	// deletes any chain of this name, so it must belong to doorman alone.
	Chain string
	// NoConnLimit turns off the connlimit match on broad rules even where
	// the kernel has it. With it off, a broad rule admits every connection
	// that starts before the daemon replaces it by the narrow rule.
	NoConnLimit bool
	// Logger receives the backend's logs; nil = slog.Default().
	Logger *slog.Logger
}

func (c IPTConfig) withDefaults() IPTConfig {
	if c.Chain == "" {
		c.Chain = DefaultIPTChain
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	c.Logger = c.Logger.With("backend", "iptables")
	return c
}

// iptComment marks every rule the iptables backend adds.
const iptComment = "doorman"

// iptRuleSpec is the rule as iptables arguments (after "-A CHAIN"):
//
//	-p tcp [-i IF] -s SRC -d DST -m tcp [--sport SPORT] --dport DPORT
//	[-m connlimit --connlimit-upto 1 --connlimit-mask 32|128]
//	-m comment --comment doorman -j ACCEPT
//
// connlimit counts, per source address, the connections that this one rule
// has accepted and are still tracked, so a broad rule lets exactly one
// connection in (the one whose packets keep matching it).
func iptRuleSpec(r Rule, connlimit bool) []string {
	spec := []string{"-p", "tcp"}
	if r.matchesIface() {
		spec = append(spec, "-i", r.Iface)
	}
	spec = append(spec, "-s", r.src().String(), "-d", r.dst().String(), "-m", "tcp")
	if !r.Broad() {
		spec = append(spec, "--sport", strconv.Itoa(int(r.SrcPort)))
	}
	spec = append(spec, "--dport", strconv.Itoa(int(r.DstPort)))
	if connlimit && r.Broad() {
		mask := "32"
		if !r.is4() {
			mask = "128"
		}
		spec = append(spec, "-m", "connlimit", "--connlimit-upto", "1", "--connlimit-mask", mask)
	}
	return append(spec, "-m", "comment", "--comment", iptComment, "-j", "ACCEPT")
}
