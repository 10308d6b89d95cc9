package config

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// fuzzResolver never touches the network.
var fuzzResolver = StaticResolver{
	Ports: map[string]uint16{"knockme": 4000},
	Hosts: map[string][]netip.Addr{"gw.example.net": {netip.MustParseAddr("198.18.5.1"), netip.MustParseAddr("2001:db8::5")}},
}

func addSeedFile(f *testing.F, path string) {
	data, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
}

// FuzzParseDaemon: any input yields either a Daemon or errors that are all
// *Error values with a position, never a panic.
func FuzzParseDaemon(f *testing.F) {
	addSeedFile(f, "testdata/doormand.cf")
	f.Add([]byte("interface eth0\nport 70000\nprotect ssh,22 x\n"))
	f.Add([]byte("interface lo\r\nfirewall script\r\nLink_Header-Length 18 # vlan\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		d, warnings, err := parseDaemon("fuzz.cf", bytes.NewReader(data), fuzzResolver)
		if (d == nil) == (err == nil) {
			t.Fatalf("daemon %v with error %v", d, err)
		}
		for _, w := range warnings {
			if w.File != "fuzz.cf" || w.Line < 0 {
				t.Fatalf("bad warning position %+v", w)
			}
		}
		if err != nil {
			for _, e := range joined(t, err) {
				if e.File != "fuzz.cf" || e.Line < 0 || e.Msg == "" {
					t.Fatalf("bad error %+v", e)
				}
			}
			return
		}
		if d.Interface == "" || d.Port == 0 || d.HashArchiveSize < MinHashArchiveSize ||
			(d.Firewall == FirewallScript && (d.FirewallAdd == "" || d.FirewallDel == "")) ||
			d.PrivateKey == "" || d.ModernWindow < MinModernWindow || d.ModernWindow > MaxModernWindow ||
			d.ModernRate < 1 || d.ModernRate > MaxModernRate || d.ModernBurst < 1 || d.ModernBurst > MaxModernBurst {
			t.Fatalf("invalid daemon accepted: %+v", d)
		}
	})
}

// FuzzParseGuestList: any input yields either guests that satisfy every
// rule of CLASSIC-9.1 to 9.3 and MODERN-12.20 or errors with a position, never a panic, and a
// secret is never echoed in an error.
func FuzzParseGuestList(f *testing.F) {
	addSeedFile(f, "testdata/dd_guestlist")
	f.Add([]byte("g s3cretsecret 22 ::ffff:198.18.9.0/120 gw.example.net 2001:db8::/33\n  knockme\n"))
	f.Add([]byte("  cont\ng\ng sec.ret 0 1.2.3/33 fe80::1%eth0 x/y/z\n"))
	// Modern guests (MODERN-12.20): a key, a weak key, a shared key, a
	// bare key, a broken prefix.
	f.Add([]byte("a pubkey.hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo= ssh 0.0.0.0/0 ::/0\nc s3cretKnock 22 198.18.0.1\n"))
	f.Add([]byte("a pubkey.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= 22 198.18.0.1\n"))
	f.Add([]byte("a pubkey.3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08= 22 198.18.0.1\nb\n pubkey.3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=\n 22 198.18.0.2\n"))
	f.Add([]byte("a hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo= 22 198.18.0.1\nb pubkey. 22 x\nc pubkey.pubkey.x 1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		guests, _, err := ParseGuestList("fuzz", bytes.NewReader(data), fuzzResolver)
		if err != nil {
			if guests != nil {
				t.Fatal("guests with an error")
			}
			var e *Error
			if !errors.As(err, &e) || e.File != "fuzz" {
				t.Fatalf("error without position: %v", err)
			}
			return
		}
		seen := map[string]bool{}
		keys := map[protocol.PublicKey]bool{}
		for _, g := range guests {
			if seen[g.Name] || g.Name == "" || len(g.Name) > 32 || len(g.Secret) > MaxSecretLen ||
				len(g.Ports) == 0 || len(g.Nets) == 0 || len(g.Sources) == 0 {
				t.Fatalf("invalid guest accepted: %+v", g)
			}
			seen[g.Name] = true
			// A guest has a secret or a usable, unshared key, never both
			// nor neither (MODERN-12.20).
			if g.IsModern() {
				if len(g.Secret) != 0 || g.Key.Check() != nil || keys[g.Key] {
					t.Fatalf("invalid modern guest accepted: %+v", g)
				}
				keys[g.Key] = true
			} else if len(g.Secret) == 0 {
				t.Fatalf("guest with neither secret nor key accepted: %+v", g)
			}
			for i, p := range g.Ports {
				if p == 0 || i > 0 && g.Ports[i-1] >= p {
					t.Fatalf("ports not sorted unique: %v", g.Ports)
				}
			}
			for _, n := range g.Nets {
				if n != n.Masked() || n.Addr().Is4In6() || n.Addr().Zone() != "" {
					t.Fatalf("net %v not canonical", n)
				}
			}
			if strings.ContainsAny(string(g.Secret), " \t#.") {
				t.Fatalf("secret with forbidden characters accepted")
			}
		}
	})
}
