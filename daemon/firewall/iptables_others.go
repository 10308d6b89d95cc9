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
func (b *IPTables) Start(context.Context, Notify) error {
	return fmt.Errorf("%s: %w", iptBackend, ErrUnsupported)
}

// Apply fails: iptables exists only on Linux.
func (b *IPTables) Apply(_ context.Context, doors []Door) []error {
	errs := make([]error, len(doors))
	for i, d := range doors {
		errs[i] = doorErr(iptBackend, d, ErrUnsupported)
	}
	return errs
}

// Close does nothing: nothing was ever added.
func (b *IPTables) Close(context.Context) error { return nil }

// Packets fails: iptables exists only on Linux.
func (b *IPTables) Packets(context.Context, Door) (uint64, error) { return 0, ErrUnsupported }
