package capture

import (
	"net/netip"
	"slices"
)

// addrSet is an immutable set of own addresses, and of the loopback
// devices' indexes. Lookups do not allocate, so Read can check every packet
// against it; updates build a new set and swap it in with an
// atomic.Pointer.
type addrSet struct {
	// few holds the addresses when there are only a few (a scan is
	// cheaper than hashing), addrs when there are many.
	few   []netip.Addr
	addrs map[netip.Addr]struct{}
	// prefixes are whole loopback subnets: 127.0.0.1/8 makes every
	// 127.x.y.z local, as the kernel's local routing table does.
	prefixes []netip.Prefix
	loIdx    []int
}

// newAddrSet builds a set from interface addresses with their prefix
// lengths (as listed by netlink). Loopback addresses (127.0.0.0/8, ::1)
// count only when loopback is true: when the watched device is a loopback
// device the admin named (CLASSIC-4.4). loIdx are the loopback devices.
func newAddrSet(ifAddrs []netip.Prefix, loopback bool, loIdx []int) *addrSet {
	s := &addrSet{addrs: make(map[netip.Addr]struct{}, len(ifAddrs)), loIdx: loIdx}
	for _, p := range ifAddrs {
		a := p.Addr().Unmap().WithZone("")
		if !a.IsValid() || a.IsLoopback() && !loopback {
			continue
		}
		if _, dup := s.addrs[a]; !dup {
			s.few = append(s.few, a)
		}
		s.addrs[a] = struct{}{}
		if a.IsLoopback() {
			if m := netip.PrefixFrom(a, p.Bits()).Masked(); m.IsValid() && m.Bits() > 0 {
				s.prefixes = append(s.prefixes, m)
			}
		}
	}
	if len(s.few) > maxFewAddrs {
		s.few = nil
	} else {
		s.addrs = nil
	}
	return s
}

// maxFewAddrs is the most addresses an addrSet scans instead of hashing.
const maxFewAddrs = 8

// contains reports whether a is an own address.
func (s *addrSet) contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	if s.addrs == nil {
		if slices.Contains(s.few, a) {
			return true
		}
	} else if _, ok := s.addrs[a]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// isLoopbackIndex reports whether ifIndex is a loopback device.
func (s *addrSet) isLoopbackIndex(ifIndex int) bool {
	return s != nil && slices.Contains(s.loIdx, ifIndex)
}

// len is the number of addresses (not prefixes) in the set, for logs.
func (s *addrSet) len() int {
	if s == nil {
		return 0
	}
	return max(len(s.few), len(s.addrs))
}
