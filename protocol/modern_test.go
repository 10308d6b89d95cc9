package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"
)

func testKeys(t testing.TB) (client, server PrivateKey) {
	t.Helper()
	var err error
	if client, err = NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	if server, err = NewPrivateKey(rand.Reader); err != nil {
		t.Fatal(err)
	}
	return client, server
}

func sealT(t testing.TB, client, server *PrivateKey, req Request) []byte {
	t.Helper()
	d, err := SealKnock(nil, client, server.Public(), &req, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestModernSizes: one fixed size, under 256 bytes, that the capture
// prefilter constants name (MODERN-12.3).
func TestModernSizes(t *testing.T) {
	if ModernKnockLen != 178 || offMAC1 != 162 || offRequest != 82 || offStatic != 34 {
		t.Fatalf("layout moved: len %d, mac1 at %d, request at %d, static at %d", ModernKnockLen, offMAC1, offRequest, offStatic)
	}
	if MinModernLen != ModernKnockLen || MaxModernLen != ModernKnockLen || ModernKnockLen >= 256 {
		t.Fatalf("MinModernLen %d, MaxModernLen %d, ModernKnockLen %d", MinModernLen, MaxModernLen, ModernKnockLen)
	}
	if reqPadding+2 > ModernRequestLen || len(NoiseProtocolName) != 32 {
		t.Fatal("request fields overflow the request")
	}
	client, server := testKeys(t)
	for _, req := range []Request{
		{Time: 1, Port: 1},
		{Time: 1<<64 - 1, Port: 65535, Source: netip.MustParseAddr("2001:db8::1"), SourcePort: 65535},
	} {
		if d := sealT(t, &client, &server, req); len(d) != ModernKnockLen || Sniff(d) != KindModern {
			t.Fatalf("%+v: %d bytes, kind %v", req, len(d), Sniff(d))
		}
	}
}

// TestPrecheckDoesNotAllocate: junk, including junk of the right length
// and header, and a valid knock cost no allocation before the public-key
// work (MODERN-12.6/2).
func TestPrecheckDoesNotAllocate(t *testing.T) {
	client, server := testKeys(t)
	o := NewOpener(&server)
	valid := sealT(t, &client, &server, Request{Time: 1, Port: 22})
	junk := bytes.Clone(valid)
	junk[100] ^= 1
	for name, p := range map[string][]byte{"short": valid[:100], "junk": junk, "valid": valid} {
		var err error
		if n := testing.AllocsPerRun(200, func() { err = o.Precheck(p) }); n != 0 {
			t.Errorf("%s: %v allocations per Precheck", name, n)
		}
		if (err == nil) != (name == "valid") {
			t.Errorf("%s: Precheck = %v", name, err)
		}
	}
}

// TestSealKnockRefuses: a knocker never sends a request a doorman refuses
// (MODERN-12.8/2), nor a knock to a weak key (MODERN-12.2/3).
func TestSealKnockRefuses(t *testing.T) {
	client, server := testKeys(t)
	for name, req := range map[string]Request{
		"port 0":             {Time: 1},
		"zone":               {Time: 1, Port: 22, Source: netip.MustParseAddr("fe80::1%eth0")},
		"ipv4 unspecified":   {Time: 1, Port: 22, Source: netip.IPv4Unspecified()},
		"ipv6 unspecified":   {Time: 1, Port: 22, Source: netip.IPv6Unspecified()},
		"mapped unspecified": {Time: 1, Port: 22, Source: netip.MustParseAddr("::ffff:0.0.0.0")},
	} {
		if _, err := SealKnock(nil, &client, server.Public(), &req, rand.Reader); err == nil {
			t.Errorf("%s: sealed", name)
		}
	}
	if _, err := SealKnock(nil, &client, PublicKey{}, &Request{Time: 1, Port: 22}, rand.Reader); !errors.Is(err, ErrWeakKey) {
		t.Errorf("zero server key: %v", err)
	}
	dst := []byte("prefix")
	if out, err := SealKnock(dst, &client, server.Public(), &Request{Port: 22}, bytes.NewReader(nil)); err == nil || string(out) != "prefix" {
		t.Errorf("no randomness: %q %v", out, err)
	}
}

// TestSealKnockMappedSource: an IPv4-mapped source is stated as IPv4
// (MODERN-12.7), so it binds to the IPv4 packet source.
func TestSealKnockMappedSource(t *testing.T) {
	client, server := testKeys(t)
	d := sealT(t, &client, &server, Request{Time: 1, Port: 22, Source: netip.MustParseAddr("::ffff:198.18.0.7")})
	k, err := NewOpener(&server).Open(d)
	if err != nil {
		t.Fatal(err)
	}
	if k.Source != netip.MustParseAddr("198.18.0.7") {
		t.Fatalf("source %v", k.Source)
	}
}

// TestSealKnockFreshEphemeral: every knock has its own ephemeral key, so
// two knocks with the same request share no bytes after the header
// (MODERN-12.10).
func TestSealKnockFreshEphemeral(t *testing.T) {
	client, server := testKeys(t)
	req := Request{Time: 42, Port: 22}
	a, b := sealT(t, &client, &server, req), sealT(t, &client, &server, req)
	if bytes.Equal(a[offEphemeral:offStatic], b[offEphemeral:offStatic]) || bytes.Equal(a[offStatic:offRequest], b[offStatic:offRequest]) {
		t.Fatal("two knocks share an ephemeral key or a ciphertext")
	}
}

// TestSealKnockAppends: SealKnock appends to dst like the classic
// AppendPayload.
func TestSealKnockAppends(t *testing.T) {
	client, server := testKeys(t)
	d, err := SealKnock([]byte("xy"), &client, server.Public(), &Request{Time: 1, Port: 22}, rand.Reader)
	if err != nil || string(d[:2]) != "xy" {
		t.Fatal(err)
	}
	if _, err := NewOpener(&server).Open(d[2:]); err != nil {
		t.Fatal(err)
	}
}

// TestClassicKnockForModernGuest: a classic knock naming a modern guest's
// group is refused as an unknown guest, whatever its MAC, including one
// made with an empty secret (MODERN-12.20/2).
func TestClassicKnockForModernGuest(t *testing.T) {
	client, _ := testKeys(t)
	g := Guest{Name: "alice", Key: client.Public(), Ports: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}}
	k, err := NewKnock(22, "alice", 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(&k, &g, netip.MustParseAddr("198.18.0.1")); err != ErrUnknownGuest {
		t.Fatalf("Verify = %v, want ErrUnknownGuest", err)
	}
	g.Key = PublicKey{}
	if err := Verify(&k, &g, netip.MustParseAddr("198.18.0.1")); err != ErrUnknownGuest {
		t.Fatalf("guest with neither secret nor key: Verify = %v", err)
	}
	if k.VerifyMAC(nil) {
		t.Fatal("a MAC verifies with the empty secret")
	}
}

// TestCheckTime: the window is inclusive either way, the default applies
// to 0, and the skew is reported with the sign of the knocker's error
// (MODERN-12.14).
func TestCheckTime(t *testing.T) {
	now := time.Unix(1767225600, 0)
	ns := uint64(now.UnixNano())
	for _, c := range []struct {
		ts     uint64
		window time.Duration
		skew   time.Duration
		ok     bool
		text   string
	}{
		{ns, 0, 0, true, "client clock 0 s ahead"},
		{ns + 93e9, 0, 93 * time.Second, false, "client clock 93 s ahead"},
		{ns - 60e9, 0, -60 * time.Second, true, "client clock 60 s behind"},
		{ns - 60e9 - 1, 0, -60*time.Second - 1, false, "client clock 60 s behind"},
		{ns + 1_500_000_000, time.Second, 1500 * time.Millisecond, false, "client clock 2 s ahead"},
		{ns - 400e6, 0, -400 * time.Millisecond, true, "client clock 400 ms behind"},
		{ns - 93600e9, 0, -26 * time.Hour, false, "client clock 26h0m0s behind"},
		{1<<64 - 1, time.Hour, 1<<63 - 1, false, "client clock 2562047h47m16s ahead"},
		{0, time.Hour, -time.Duration(ns), false, "client clock 490896h0m0s behind"},
	} {
		skew, err := CheckTime(c.ts, now, c.window)
		if skew != c.skew || (err == nil) != c.ok || (err != nil && err != ErrClockSkew) {
			t.Errorf("CheckTime(%d, window %v) = %v, %v; want %v ok=%v", c.ts, c.window, skew, err, c.skew, c.ok)
		}
		if got := DescribeSkew(skew); got != c.text {
			t.Errorf("DescribeSkew(%v) = %q, want %q", skew, got, c.text)
		}
	}
	if _, err := CheckTime(5, time.Unix(0, -10), time.Hour); err != nil {
		t.Errorf("before 1970: %v", err)
	}
	if got := DescribeSkew(-1 << 63); got != "client clock 2562047h47m16s behind" {
		t.Errorf("most negative skew: %q", got)
	}
}

// TestRequestDoor: a stated source must be the packet's (IPv4-mapped
// counts as IPv4); an "as seen" knock takes the packet's (MODERN-12.15).
func TestRequestDoor(t *testing.T) {
	stated := Request{Port: 22, Source: netip.MustParseAddr("198.18.0.7")}
	for src, ok := range map[string]bool{"198.18.0.7": true, "::ffff:198.18.0.7": true, "198.18.0.8": false, "2001:db8::7": false} {
		door, err := stated.Door(netip.MustParseAddr(src))
		if ok != (err == nil) || (ok && door != stated.Source) || (!ok && err != ErrSourceMismatch) {
			t.Errorf("stated 198.18.0.7 from %s: %v %v", src, door, err)
		}
	}
	seen := Request{Port: 22}
	if door, err := seen.Door(netip.MustParseAddr("::ffff:198.18.0.9")); err != nil || door != netip.MustParseAddr("198.18.0.9") {
		t.Errorf("as seen: %v %v", door, err)
	}
}

// TestVerifyModernOrder: the checks after the guest lookup run in the
// order of MODERN-12.11, so a knock failing several is refused for the
// first.
func TestVerifyModernOrder(t *testing.T) {
	client, other := testKeys(t)
	now := time.Unix(1767225600, 0)
	g := Guest{Name: "alice", Key: client.Public(), Ports: []uint16{22}, Nets: []netip.Prefix{netip.MustParsePrefix("198.18.0.0/24")}}
	k := ModernKnock{Client: client.Public(), Request: Request{Time: uint64(now.UnixNano()), Port: 22, Source: netip.MustParseAddr("198.18.0.7")}}
	src := netip.MustParseAddr("198.18.0.7")
	check := func(name string, k ModernKnock, src netip.Addr, want error) {
		t.Helper()
		if _, err := VerifyModern(&k, &g, src, now, 0); err != want {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
	}
	check("valid", k, src, nil)
	bad := k
	bad.Client = other.Public()
	check("other key", bad, src, ErrUnknownGuest)
	bad = k
	bad.Time += 61e9
	bad.Port = 23
	check("time before port", bad, netip.MustParseAddr("203.0.113.1"), ErrClockSkew)
	bad = k
	bad.Port = 23
	check("source before port", bad, netip.MustParseAddr("198.18.0.8"), ErrSourceMismatch)
	check("port before address", bad, src, ErrPortNotAllowed)
	bad = k
	bad.Source = netip.Addr{}
	check("address", bad, netip.MustParseAddr("198.18.1.1"), ErrAddrNotAllowed)
}

// TestOpenConcurrent: one Opener serves several goroutines (run with -race).
func TestOpenConcurrent(t *testing.T) {
	client, server := testKeys(t)
	o := NewOpener(&server)
	d := sealT(t, &client, &server, Request{Time: 1, Port: 22})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 4 {
		wg.Go(func() {
			for range 20 {
				if _, err := o.Open(d); err != nil {
					errs <- err
					return
				}
				junk := bytes.Clone(d)
				junk[3] ^= 1
				if err := o.Precheck(junk); err != ErrMAC1 {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// BenchmarkModernJunk: the cost of dropping a datagram that has a modern
// knock's length and header but no valid mac1 (MODERN-12.6/2): the work a
// scanner or a flood of junk causes. Target: under 1 µs, 0 allocs.
func BenchmarkModernJunk(b *testing.B) {
	_, server := testKeys(b)
	o := NewOpener(&server)
	junk := make([]byte, ModernKnockLen)
	rand.Read(junk)
	junk[0], junk[1] = ModernMagic, ModernTypeKnock
	b.ReportAllocs()
	for b.Loop() {
		if o.Precheck(junk) != ErrMAC1 {
			b.Fatal("junk passed")
		}
	}
}

// BenchmarkModernJunkWrongLength: the cost of the cheapest refusal.
func BenchmarkModernJunkWrongLength(b *testing.B) {
	_, server := testKeys(b)
	o := NewOpener(&server)
	junk := make([]byte, 100)
	junk[0], junk[1] = ModernMagic, ModernTypeKnock
	b.ReportAllocs()
	for b.Loop() {
		if o.Precheck(junk) != ErrModernLength {
			b.Fatal("junk passed")
		}
	}
}

// BenchmarkX25519: one Diffie-Hellman operation, the unit of public-key
// work; Open does two.
func BenchmarkX25519(b *testing.B) {
	client, server := testKeys(b)
	pub := server.Public()
	priv, _ := ecdh.X25519().NewPrivateKey(client[:])
	peer, _ := ecdh.X25519().NewPublicKey(pub[:])
	for b.Loop() {
		if _, err := priv.ECDH(peer); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModernOpen: a full modern verify of a valid knock: mac1, the
// Noise X read (two X25519 operations) and the request decoding.
func BenchmarkModernOpen(b *testing.B) {
	client, server := testKeys(b)
	o := NewOpener(&server)
	d := sealT(b, &client, &server, Request{Time: 1, Port: 22, Source: netip.MustParseAddr("198.18.0.7")})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := o.Open(d); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkModernSeal: what a knocker spends building a knock.
func BenchmarkModernSeal(b *testing.B) {
	client, server := testKeys(b)
	pub := server.Public()
	req := Request{Time: 1, Port: 22}
	buf := make([]byte, 0, ModernKnockLen)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealKnock(buf, &client, pub, &req, rand.Reader); err != nil {
			b.Fatal(err)
		}
	}
}
