//go:build !linux

package firewall

import (
	"context"
	"fmt"
)

// nftState is empty where nftables does not exist.
type nftState struct{}

// Start fails: nftables exists only on Linux.
func (n *NFTables) Start(context.Context, Notify) error {
	return fmt.Errorf("%s: %w", nftBackend, ErrUnsupported)
}

// Apply fails: nftables exists only on Linux.
func (n *NFTables) Apply(_ context.Context, doors []Door) []error {
	errs := make([]error, len(doors))
	for i, d := range doors {
		errs[i] = doorErr(nftBackend, d, ErrUnsupported)
	}
	return errs
}

// Close does nothing: nothing was ever added.
func (n *NFTables) Close(context.Context) error { return nil }

// setBlocked fails: nftables exists only on Linux.
func (n *NFTables) setBlocked(Door, bool) error { return ErrUnsupported }

// Packets fails: nftables exists only on Linux.
func (n *NFTables) Packets(context.Context, Door) (uint64, error) { return 0, ErrUnsupported }
