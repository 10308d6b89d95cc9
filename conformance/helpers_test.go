//go:build linux

package conformance

import "net/netip"

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }
