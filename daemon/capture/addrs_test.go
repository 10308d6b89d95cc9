package capture

import (
	"net/netip"
	"testing"
)

func TestAddrSet(t *testing.T) {
	s := newAddrSet([]netip.Prefix{
		netip.MustParsePrefix("198.18.0.2/24"),
		netip.MustParsePrefix("2001:db8::2/64"),
		netip.MustParsePrefix("127.0.0.1/8"),
		netip.MustParsePrefix("::1/128"),
		netip.PrefixFrom(netip.AddrFrom16(netip.MustParseAddr("198.19.0.1").As16()), 120), // v4-mapped
	})
	for a, want := range map[string]bool{
		"198.18.0.2":  true,
		"198.18.0.3":  false, // same subnet is not local
		"2001:db8::2": true,
		"2001:db8::3": false,
		"127.0.0.1":   true,
		"127.1.2.3":   true, // the whole loopback prefix is local
		"::1":         true,
		"198.19.0.1":  true,
		"0.0.0.0":     false,
	} {
		if got := s.contains(netip.MustParseAddr(a)); got != want {
			t.Errorf("contains(%s) = %v, want %v", a, got, want)
		}
	}
	var empty *addrSet
	if empty.contains(netip.MustParseAddr("198.18.0.2")) || empty.len() != 0 {
		t.Error("nil set is not empty")
	}
	dst := netip.MustParseAddr("198.18.0.2")
	if n := testing.AllocsPerRun(100, func() { s.contains(dst) }); n != 0 {
		t.Errorf("contains allocates %v times", n)
	}
}
