//go:build !linux

package firewall

import (
	"context"
	"fmt"
)

// Start fails: nftables exists only on Linux.
func (n *NFTables) Start(context.Context) error { return fmt.Errorf("nftables: %w", ErrUnsupported) }

// Add fails: nftables exists only on Linux.
func (n *NFTables) Add(_ context.Context, r Rule) error {
	return ruleErr("nftables", "add", r, ErrUnsupported)
}

// Delete fails: nftables exists only on Linux.
func (n *NFTables) Delete(_ context.Context, r Rule) error {
	return ruleErr("nftables", "delete", r, ErrUnsupported)
}

// Close does nothing: nothing was ever added.
func (n *NFTables) Close(context.Context) error { return nil }
