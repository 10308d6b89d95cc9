package protocol

import (
	"log/slog"
	"net/netip"
	"slices"
)

// Secret is a shared secret. It hides itself from fmt and log/slog so that a
// guest record can be logged without leaking it.
type Secret []byte

// String returns a placeholder, never the secret.
func (Secret) String() string { return "[redacted]" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Guest is one guest-list record: a group name, its secret, the TCP ports it
// may open and the source addresses it may knock from (CLASSIC-9.3).
type Guest struct {
	Name   string
	Secret Secret
	Ports  []uint16       // sorted ascending, no duplicates
	Nets   []netip.Prefix // masked; IPv4 prefixes are 4-byte form
	// Sources keeps each address entry as written, for messages.
	Sources []string
}

// AllowsPort reports whether the guest may open port.
func (g *Guest) AllowsPort(port uint16) bool {
	_, ok := slices.BinarySearch(g.Ports, port)
	return ok
}

// AllowsAddr reports whether src is inside one of the guest's networks. An
// IPv4-mapped IPv6 source is treated as the IPv4 address it carries.
func (g *Guest) AllowsAddr(src netip.Addr) bool {
	src = src.Unmap()
	for _, n := range g.Nets {
		if n.Contains(src) {
			return true
		}
	}
	return false
}

// Verify runs the checks that follow guest lookup, in the spec's order
// (CLASSIC-4.1): requested port, source address, then MAC. The replay check
// comes last and is the caller's, because it records state.
func Verify(k *Knock, g *Guest, src netip.Addr) error {
	if !g.AllowsPort(k.Port) {
		return ErrPortNotAllowed
	}
	if !g.AllowsAddr(src) {
		return ErrAddrNotAllowed
	}
	if !k.VerifyMAC(g.Secret) {
		return ErrBadMAC
	}
	return nil
}
