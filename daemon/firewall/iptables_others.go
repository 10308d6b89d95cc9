//go:build !linux

package firewall

import (
	"context"
	"fmt"
)

// IPTables is the iptables backend; on this OS every call fails with
// ErrUnsupported.
type IPTables struct{ cfg IPTConfig }

// NewIPTables returns a backend that is not supported on this OS.
func NewIPTables(cfg IPTConfig) *IPTables { return &IPTables{cfg: cfg.withDefaults()} }

// Start fails: iptables exists only on Linux.
func (b *IPTables) Start(context.Context) error { return fmt.Errorf("iptables: %w", ErrUnsupported) }

// Add fails: iptables exists only on Linux.
func (b *IPTables) Add(_ context.Context, r Rule) error {
	return ruleErr("iptables", "add", r, ErrUnsupported)
}

// Delete fails: iptables exists only on Linux.
func (b *IPTables) Delete(_ context.Context, r Rule) error {
	return ruleErr("iptables", "delete", r, ErrUnsupported)
}

// Close does nothing: nothing was ever added.
func (b *IPTables) Close(context.Context) error { return nil }

// ConnLimit reports whether broad rules use connlimit (never here).
func (b *IPTables) ConnLimit() bool { return false }
