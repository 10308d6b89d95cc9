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

// Guest is one guest-list record: a group name, its secret or public key,
// the TCP ports it may open and the source addresses it may knock from
// (CLASSIC-9.3, MODERN-12.20). A classic guest has a Secret and a zero Key;
// a modern guest a Key and no Secret.
type Guest struct {
	Name   string
	Secret Secret
	// Key is a modern guest's static public key (MODERN-12.13); the zero
	// key for a classic guest.
	Key   PublicKey
	Ports []uint16       // sorted ascending, no duplicates
	Nets  []netip.Prefix // masked; IPv4 prefixes are 4-byte form
	// Sources keeps each address entry as written, for messages.
	Sources []string
}

// IsModern reports whether the guest knocks with the modern protocol (it has
// a public key instead of a secret).
func (g *Guest) IsModern() bool { return !g.Key.IsZero() }

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
//
// A modern guest is no classic guest: a classic knock naming its group is
// refused as ErrUnknownGuest (MODERN-12.20/2), and so is any guest without
// a secret, whose empty "secret" anyone could sign with.
func Verify(k *Knock, g *Guest, src netip.Addr) error {
	if g.IsModern() || len(g.Secret) == 0 {
		return ErrUnknownGuest
	}
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
