package config

import (
	"bytes"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// Public keys of RFC 7748 section 6.1 (Alice, Bob), as knock keygen prints
// them.
const (
	aliceKey = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
	bobKey   = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
)

// TestParseGuestListModern: classic and modern guests side by side; a
// modern guest has its key and no secret, and may knock from anywhere
// without a warning (MODERN-12.20).
func TestParseGuestListModern(t *testing.T) {
	text := "# group  secret-or-key  ports  addresses\n" +
		"classic s3cretKnock ssh 198.18.0.0/24\n" +
		"alice pubkey." + aliceKey + " ssh 2222 0.0.0.0/0 ::/0\n" +
		"bob\n  pubkey." + bobKey + "\n  443 2001:db8::/32\n"
	guests, warnings, err := parseG(t, text)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings: %v", warnings)
	}
	if len(guests) != 3 {
		t.Fatalf("%d guests", len(guests))
	}
	alice, _ := protocol.ParsePublicKey(aliceKey)
	bob, _ := protocol.ParsePublicKey(bobKey)
	want := []protocol.Guest{
		{Name: "classic", Secret: protocol.Secret("s3cretKnock"), Ports: []uint16{22}, Nets: pfx("198.18.0.0/24"), Sources: []string{"198.18.0.0/24"}},
		{Name: "alice", Key: alice, Ports: []uint16{22, 2222}, Nets: pfx("0.0.0.0/0", "::/0"), Sources: []string{"0.0.0.0/0", "::/0"}},
		{Name: "bob", Key: bob, Ports: []uint16{443}, Nets: pfx("2001:db8::/32"), Sources: []string{"2001:db8::/32"}},
	}
	if !reflect.DeepEqual(guests, want) {
		t.Errorf("got  %+v\nwant %+v", guests, want)
	}
	if guests[0].IsModern() || !guests[1].IsModern() || len(guests[1].Secret) != 0 {
		t.Error("IsModern or Secret wrong")
	}
}

// TestParseGuestListModernErrors: a malformed, weak or shared key is an
// error naming file, line and the key, and the list is not loaded
// (MODERN-12.2/3, MODERN-12.20/1).
func TestParseGuestListModernErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"short key", "g pubkey." + aliceKey[:43] + " 22 198.18.0.1\n",
			`guests:1: public key of group "g": "` + aliceKey[:43] + `" is not a key: after pubkey. write the guest's public key, 44 characters of base64 as knock keygen prints it`},
		{"empty key", "g pubkey. 22 198.18.0.1\n",
			`guests:1: public key of group "g": "" is not a key: after pubkey. write the guest's public key, 44 characters of base64 as knock keygen prints it`},
		{"weak key", "g pubkey.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= 22 198.18.0.1\n",
			`guests:1: public key of group "g": AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA= is not a usable X25519 public key (a point of small order)`},
		{"shared key", "a pubkey." + aliceKey + " 22 198.18.0.1\nb\n  pubkey." + aliceKey + " 22 198.18.0.2\n",
			`guests:3: public key of group "b": is already the key of group "a" on line 1; each guest needs a key pair of its own`},
		{"prefix in upper case is a bad secret", "g PUBKEY." + aliceKey + " 22 198.18.0.1\n",
			`guests:1: secret of group "g": character 7 is not a letter, digit or one of ` + protocol.GroupAlphabet},
		{"no port", "g pubkey." + aliceKey + " 198.18.0.1\n",
			`guests:1: group "g": has no port: list at least one port number or service name`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			guests, _, err := parseG(t, tc.text)
			if err == nil || guests != nil {
				t.Fatalf("accepted: %+v", guests)
			}
			var got []string
			for _, e := range joined(t, err) {
				got = append(got, e.Error())
			}
			if len(got) != 1 || got[0] != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestParseGuestListBareKeyWarns: a public key pasted without the prefix
// is a valid classic secret, and a dangerous one (anyone who knows the
// public key can knock); it loads with a warning that does not show it.
func TestParseGuestListBareKeyWarns(t *testing.T) {
	guests, warnings, err := parseG(t, "g "+aliceKey+" 22 198.18.0.1\n")
	if err != nil || len(guests) != 1 || guests[0].IsModern() {
		t.Fatalf("%+v %v", guests, err)
	}
	want := `guests:1: secret of group "g": looks like a public key; for a modern guest write pubkey. before it; as written it is a classic secret`
	if len(warnings) != 1 || warnings[0].String() != want {
		t.Fatalf("warnings %v", warnings)
	}
	if strings.Contains(warnings[0].String(), aliceKey[:8]) {
		t.Error("the warning shows the secret")
	}
}

// TestParseGuestList081Unchanged: a 0.81 guest list reads exactly as
// before modern guests existed: every guest is classic.
func TestParseGuestList081Unchanged(t *testing.T) {
	data, err := os.ReadFile("testdata/dd_guestlist")
	if err != nil {
		t.Fatal(err)
	}
	guests, _, err := ParseGuestList("dd_guestlist", bytes.NewReader(data), StaticResolver{})
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range guests {
		if g.IsModern() || len(g.Secret) == 0 {
			t.Errorf("%s: %+v", g.Name, g)
		}
	}
}
