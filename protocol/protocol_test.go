package protocol

import (
	"errors"
	"net/netip"
	"testing"
	"time"
)

func testGuest() Guest {
	return Guest{
		Name:   "alice",
		Secret: Secret("s3cretKnock"),
		Ports:  []uint16{22, 2222},
		Nets:   []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24"), netip.MustParsePrefix("2001:db8::/64")},
	}
}

const originalPayload = "2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0d2"

// TestVerifyOrder checks each rejection and that the checks run in the
// spec's order: port before address before MAC (CLASSIC-4.1).
func TestVerifyOrder(t *testing.T) {
	g := testGuest()
	var k Knock
	if err := ParseKnock([]byte(originalPayload), &k); err != nil {
		t.Fatal(err)
	}
	in := netip.MustParseAddr("198.18.0.9")
	out := netip.MustParseAddr("198.19.0.9")
	cases := []struct {
		name   string
		g      Guest
		src    netip.Addr
		expect error
	}{
		{"ok", g, in, nil},
		{"ok-v4-mapped", g, netip.MustParseAddr("::ffff:198.18.0.9"), nil},
		{"address", g, out, ErrAddrNotAllowed},
		{"port-before-address", Guest{Name: "alice", Secret: g.Secret, Ports: []uint16{22}, Nets: g.Nets}, out, ErrPortNotAllowed},
		{"mac", Guest{Name: "alice", Secret: Secret("wrong"), Ports: g.Ports, Nets: g.Nets}, in, ErrBadMAC},
		{"address-before-mac", Guest{Name: "alice", Secret: Secret("wrong"), Ports: g.Ports, Nets: g.Nets}, out, ErrAddrNotAllowed},
		{"ipv6", g, netip.MustParseAddr("2001:db8::5"), nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := Verify(&k, &c.g, c.src); !errors.Is(err, c.expect) {
				t.Fatalf("Verify = %v, want %v", err, c.expect)
			}
		})
	}
}

// TestSniff checks that a classic knock and the reserved modern version are
// told apart by the first byte (CLASSIC-2.6).
func TestSniff(t *testing.T) {
	for p, want := range map[string]Kind{
		originalPayload: KindClassic, "\xd2\x01": KindModern, "": KindUnknown, "x": KindUnknown, " 2": KindUnknown,
	} {
		if got := Sniff([]byte(p)); got != want {
			t.Errorf("Sniff(%q) = %d, want %d", p, got, want)
		}
	}
}

// TestNewKnockRejectsBadInput: a client cannot build a knock the spec
// forbids (CLASSIC-2.2).
func TestNewKnockRejectsBadInput(t *testing.T) {
	for _, c := range []struct {
		port  uint16
		group string
	}{{0, "alice"}, {22, ""}, {22, "has space"}, {22, "dot.ted"}, {22, "abcdefghijklmnopqrstuvwxyz0123456"}} {
		if _, err := NewKnock(c.port, c.group, 1, []byte("s")); err == nil {
			t.Errorf("NewKnock(%d, %q) succeeded", c.port, c.group)
		}
	}
}

// TestSecretRedacted: secrets never print (CLASSIC-13).
func TestSecretRedacted(t *testing.T) {
	s := Secret("hunter2")
	if s.String() == "hunter2" || s.LogValue().String() == "hunter2" {
		t.Fatal("secret leaks through String or LogValue")
	}
}

// TestReplayRemembersTime: a replay reports when the original was accepted,
// as 0.81's log line does (CLASSIC-5.3).
func TestReplayRemembersTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 5, 0, 0, 0, time.UTC)
	r := ReplaySet{Now: func() time.Time { return at }}
	var mac [MACSize]byte
	if _, err := r.Admit(mac); err != nil {
		t.Fatal(err)
	}
	first, err := r.Admit(mac)
	if err != ErrReplay || !first.Equal(at) {
		t.Fatalf("second Admit = %v, %v; want %v, ErrReplay", first, err, at)
	}
}

// TestVerifyNoAlloc: parsing and verifying a knock of a valid length does
// not allocate (hot path target from the foundation issue).
func TestVerifyNoAlloc(t *testing.T) {
	g := testGuest()
	p := []byte(originalPayload)
	src := netip.MustParseAddr("198.18.0.9")
	allocs := testing.AllocsPerRun(100, func() {
		var k Knock
		if ParseKnock(p, &k) != nil || Verify(&k, &g, src) != nil {
			panic("vector does not verify")
		}
	})
	if allocs != 0 {
		t.Fatalf("parse+verify allocates %.1f times per knock", allocs)
	}
}

func BenchmarkVerify(b *testing.B) {
	g := testGuest()
	p := []byte(originalPayload)
	src := netip.MustParseAddr("198.18.0.9")
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		var k Knock
		if ParseKnock(p, &k) != nil || Verify(&k, &g, src) != nil {
			b.Fatal("vector does not verify")
		}
	}
}

func BenchmarkParseJunk(b *testing.B) {
	p := []byte("2222 alice 1900216097 6e5df0a5edc4d12ba369070be523e0dZ")
	b.ReportAllocs()
	for b.Loop() {
		var k Knock
		if ParseKnock(p, &k) == nil {
			b.Fatal("junk parsed")
		}
	}
}
