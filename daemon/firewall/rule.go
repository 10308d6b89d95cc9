package firewall

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Rule is one firewall rule as the 0.81 scripts see it: TCP from Src to
// Dst:DstPort.
//
// SrcPort 0 is the "broad" rule (any source port) that a door holds while it
// waits for the client's first SYN; SrcPort != 0 is the "narrow" rule for that
// one connection. Rule is comparable and is used as a map key: a rule is
// deleted with the same value it was added with. IPv4-mapped IPv6 addresses
// are matched as IPv4 and address zones are ignored.
type Rule struct {
	Iface   string     // capture interface name; "" or "any" = do not match on the interface
	Src     netip.Addr // the client's address
	SrcPort uint16     // 0 = any source port (broad rule)
	Dst     netip.Addr // the local address the knock was sent to
	DstPort uint16     // the TCP port the door opens
}

// String formats the rule for logs, e.g.
// "tcp 198.18.0.2:any -> 198.18.0.1:22 on veth0".
func (r Rule) String() string {
	var b strings.Builder
	b.WriteString("tcp ")
	writeHostPort(&b, r.Src, r.SrcPort)
	b.WriteString(" -> ")
	writeHostPort(&b, r.Dst, r.DstPort)
	if r.matchesIface() {
		b.WriteString(" on ")
		b.WriteString(r.Iface)
	}
	return b.String()
}

func writeHostPort(b *strings.Builder, a netip.Addr, port uint16) {
	host := "invalid-ip"
	if a.IsValid() {
		host = a.String()
	}
	if a.Is6() {
		b.WriteByte('[')
		b.WriteString(host)
		b.WriteByte(']')
	} else {
		b.WriteString(host)
	}
	b.WriteByte(':')
	if port == 0 {
		b.WriteString("any")
	} else {
		b.WriteString(strconv.Itoa(int(port)))
	}
}

// Broad reports whether the rule admits any source port.
func (r Rule) Broad() bool { return r.SrcPort == 0 }

// matchesIface reports whether the rule is restricted to one interface.
func (r Rule) matchesIface() bool { return r.Iface != "" && r.Iface != "any" }

// src and dst are the addresses as the kernel sees them: no zone, and an
// IPv4-mapped address as plain IPv4 (the packet is IPv4 then).
func (r Rule) src() netip.Addr { return r.Src.WithZone("").Unmap() }
func (r Rule) dst() netip.Addr { return r.Dst.WithZone("").Unmap() }

// validate checks that every backend can express the rule. Interface names
// end up in argv, in journal lines and in nftables registers, so they are held
// to the kernel's own rules (dev_valid_name) and to IFNAMSIZ.
func (r Rule) validate() error {
	switch {
	case !r.Src.IsValid():
		return fmt.Errorf("%w: no source address", ErrInvalidRule)
	case !r.Dst.IsValid():
		return fmt.Errorf("%w: no destination address", ErrInvalidRule)
	case r.src().Is4() != r.dst().Is4():
		return fmt.Errorf("%w: source %s and destination %s are of different families", ErrInvalidRule, r.Src, r.Dst)
	case r.DstPort == 0:
		return fmt.Errorf("%w: destination port 0", ErrInvalidRule)
	}
	return validIface(r.Iface)
}

// ifNameSize is Linux's IFNAMSIZ: names have at most 15 bytes plus a NUL.
const ifNameSize = 16

func validIface(name string) error {
	if name == "" {
		return nil
	}
	if len(name) >= ifNameSize || name == "." || name == ".." {
		return fmt.Errorf("%w: bad interface name %q", ErrInvalidRule, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c <= ' ' || c == '/' || c == ':' || c >= 0x7f {
			return fmt.Errorf("%w: bad interface name %q", ErrInvalidRule, name)
		}
	}
	return nil
}

// RuleError says which rule a backend failed on: the script backend's
// errors for single rules (a delete in Close) are of this type, so the
// daemon can log the rule and still test the cause with errors.Is /
// errors.As (*ScriptError, ...). Errors about whole doors are *DoorError.
type RuleError struct {
	Backend string // "nftables", "iptables", "script" or "fake"
	Op      string // "add" or "delete"
	Rule    Rule
	Err     error
}

// Error implements error.
func (e *RuleError) Error() string {
	return e.Backend + ": " + e.Op + " " + e.Rule.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *RuleError) Unwrap() error { return e.Err }

func ruleErr(backend, op string, r Rule, err error) error {
	if err == nil {
		return nil
	}
	return &RuleError{Backend: backend, Op: op, Rule: r, Err: err}
}
