package capture

import "net/netip"

// addrSet is an immutable set of local addresses. Lookups do not allocate,
// so Read can check every packet against it; updates build a new set and
// swap it in with an atomic.Pointer.
type addrSet struct {
	addrs map[netip.Addr]struct{}
	// prefixes are whole loopback subnets: 127.0.0.1/8 makes every
	// 127.x.y.z local, as the kernel's local routing table does.
	prefixes []netip.Prefix
}

// newAddrSet builds a set from interface addresses with their prefix
// lengths (as listed by netlink).
func newAddrSet(ifAddrs []netip.Prefix) *addrSet {
	s := &addrSet{addrs: make(map[netip.Addr]struct{}, len(ifAddrs))}
	for _, p := range ifAddrs {
		a := p.Addr().Unmap().WithZone("")
		if !a.IsValid() {
			continue
		}
		s.addrs[a] = struct{}{}
		if a.IsLoopback() {
			if m := netip.PrefixFrom(a, p.Bits()).Masked(); m.IsValid() && m.Bits() > 0 {
				s.prefixes = append(s.prefixes, m)
			}
		}
	}
	return s
}

// contains reports whether a is a local address.
func (s *addrSet) contains(a netip.Addr) bool {
	if s == nil {
		return false
	}
	if _, ok := s.addrs[a]; ok {
		return true
	}
	for _, p := range s.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// len is the number of addresses (not prefixes) in the set, for logs.
func (s *addrSet) len() int {
	if s == nil {
		return 0
	}
	return len(s.addrs)
}
