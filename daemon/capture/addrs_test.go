package capture

import (
	"net/netip"
	"testing"
)

// TestAddrSet: which destinations count as own addresses (CLASSIC-4.4).
func TestAddrSet(t *testing.T) {
	ifAddrs := []netip.Prefix{
		netip.MustParsePrefix("198.18.0.2/24"),
		netip.MustParsePrefix("2001:db8::2/64"),
		netip.MustParsePrefix("fe80::2/64"),
		netip.MustParsePrefix("127.0.0.1/8"),
		netip.MustParsePrefix("::1/128"),
		netip.PrefixFrom(netip.AddrFrom16(netip.MustParseAddr("198.19.0.1").As16()), 120), // v4-mapped
	}
	cases := map[string][2]bool{ // address: {on a loopback device, on another one}
		"198.18.0.2":      {true, true},
		"198.18.0.3":      {false, false}, // same subnet is not local
		"198.18.0.255":    {false, false}, // nor its broadcast address
		"2001:db8::2":     {true, true},
		"2001:db8::3":     {false, false},
		"fe80::2":         {true, true},
		"127.0.0.1":       {true, false}, // loopback only where the admin named a loopback device
		"127.1.2.3":       {true, false}, // the whole loopback prefix
		"::1":             {true, false},
		"198.19.0.1":      {true, true},
		"0.0.0.0":         {false, false},
		"224.0.0.1":       {false, false},
		"ff02::1":         {false, false},
		"255.255.255.255": {false, false},
	}
	for i, loopback := range []bool{true, false} {
		s := newAddrSet(ifAddrs, loopback, []int{1})
		for a, want := range cases {
			if got := s.contains(netip.MustParseAddr(a)); got != want[i] {
				t.Errorf("loopback device %v: contains(%s) = %v, want %v", loopback, a, got, want[i])
			}
		}
		if !s.isLoopbackIndex(1) || s.isLoopbackIndex(2) {
			t.Error("isLoopbackIndex")
		}
	}
	// Many addresses are hashed rather than scanned; same answers.
	var many []netip.Prefix
	for i := range 2 * maxFewAddrs {
		many = append(many, netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(i)}), 24))
	}
	big := newAddrSet(append(many, ifAddrs...), false, nil)
	for a, want := range cases {
		if got := big.contains(netip.MustParseAddr(a)); got != want[1] {
			t.Errorf("large set: contains(%s) = %v, want %v", a, got, want[1])
		}
	}
	if !big.contains(netip.MustParseAddr("198.18.1.15")) || big.len() != 2*maxFewAddrs+4 {
		t.Errorf("large set: %d addresses", big.len())
	}
	var empty *addrSet
	if empty.contains(netip.MustParseAddr("198.18.0.2")) || empty.len() != 0 || empty.isLoopbackIndex(1) {
		t.Error("nil set is not empty")
	}
	s := newAddrSet(ifAddrs, false, nil)
	dst := netip.MustParseAddr("198.18.0.2")
	if n := testing.AllocsPerRun(100, func() { s.contains(dst) }); n != 0 {
		t.Errorf("contains allocates %v times", n)
	}
}
