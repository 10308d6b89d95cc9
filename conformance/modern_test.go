//go:build linux

package conformance

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func loadModernVectorsT(t *testing.T) *ModernVectors {
	t.Helper()
	v, err := LoadModernVectors("../spec/vectors/modern.json")
	if err != nil {
		t.Fatalf("modern vectors: %v", err)
	}
	if len(v.Valid) == 0 || len(v.Reject) == 0 {
		t.Fatalf("modern vectors: %d valid, %d reject", len(v.Valid), len(v.Reject))
	}
	return v
}

func mustKey(t *testing.T, s string) [32]byte {
	t.Helper()
	k, err := parseKeyText(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestModernVectors: the suite's own Noise X builds every valid vector of
// modern.json byte for byte from its inputs, and opens each to its client
// key and request.
func TestModernVectors(t *testing.T) {
	v := loadModernVectorsT(t)
	for _, x := range v.Valid {
		client := keyPairFrom(mustKey(t, v.Keys[x.Client].Private))
		server := keyPairFrom(mustKey(t, v.Keys[x.Server].Private))
		eph, err := base64.StdEncoding.DecodeString(x.EphemeralPrivate)
		if err != nil || len(eph) != 32 {
			t.Fatalf("%s: ephemeral %q", x.Name, x.EphemeralPrivate)
		}
		req, _ := hex.DecodeString(x.RequestHex)
		d, err := sealSpec{client: client, server: server.pub, ephemeral: [32]byte(eph), request: req}.seal(server.pub)
		if err != nil {
			t.Fatalf("%s: %v", x.Name, err)
		}
		if got := hex.EncodeToString(d); got != x.DatagramHex {
			t.Errorf("%s: built\n%s\nwant\n%s", x.Name, got, x.DatagramHex)
		}
		key, plain, err := openModern(server, d)
		if err != nil || key != client.pub || !bytes.Equal(plain, req) {
			t.Errorf("%s: opened to %x %x %v", x.Name, key, plain, err)
		}
		r, err := parseRequest(plain)
		if err != nil || r.check() != nil || !bytes.Equal(r.bytes(), req) {
			t.Errorf("%s: request %+v: %v %v", x.Name, r, err, r.check())
		}
	}
}

// TestModernRejectRecipes: every reject vector has a recipe that rebuilds
// it byte for byte from the vectors' inputs, so that the daemon case that
// sends them with fresh times sends the same defects. The suite's opener
// refuses each as the vector says.
func TestModernRejectRecipes(t *testing.T) {
	v := loadModernVectorsT(t)
	p, err := v.vectorParams()
	if err != nil {
		t.Fatal(err)
	}
	server := keyPairFrom(mustKey(t, v.Keys["server-a"].Private))
	var names []string
	for _, x := range v.Reject {
		names = append(names, x.Name)
		recipe, ok := rejectRecipes[x.Name]
		if !ok {
			t.Errorf("reject vector %s has no recipe in rejectRecipes", x.Name)
			continue
		}
		want, err := x.datagram()
		if err != nil {
			t.Fatalf("%s: %v", x.Name, err)
		}
		if got := recipe(p); !bytes.Equal(got, want) {
			t.Errorf("%s: recipe built\n%x\nwant\n%x", x.Name, got, want)
		}
		_, req, err := openModern(server, want)
		switch x.Error {
		case "length", "not-modern", "type":
			if !errors.Is(err, errModernForm) {
				t.Errorf("%s: opened with %v, want a form error", x.Name, err)
			}
		case "mac1":
			if !errors.Is(err, errModernMAC1) {
				t.Errorf("%s: opened with %v, want a mac1 error", x.Name, err)
			}
		case "decrypt":
			if !errors.Is(err, errModernAEAD) {
				t.Errorf("%s: opened with %v, want a decrypt error", x.Name, err)
			}
		default:
			r, perr := parseRequest(req)
			if err != nil || perr != nil {
				t.Fatalf("%s: %v %v", x.Name, err, perr)
			}
			if cerr := r.check(); cerr == nil || !strings.HasPrefix(cerr.Error(), x.Error) {
				t.Errorf("%s: request check says %v, want the field %s", x.Name, cerr, x.Error)
			}
		}
	}
	for name := range rejectRecipes {
		if !slices.Contains(names, name) {
			t.Errorf("recipe %s names no reject vector of modern.json", name)
		}
	}
}

// TestModernRequestCanonical: requests the suite builds are canonical, and
// every stated source round-trips.
func TestModernRequestCanonical(t *testing.T) {
	for _, src := range []string{"", "198.18.0.2", "2001:db8::2", "::ffff:198.18.0.2"} {
		var a netip.Addr
		if src != "" {
			a = netip.MustParseAddr(src)
		}
		for _, sport := range []uint16{0, 1, 65535} {
			r := newRequest(1, 2222, a, sport)
			if err := r.check(); err != nil {
				t.Errorf("%s %d: %v", src, sport, err)
			}
			back, _ := parseRequest(r.bytes())
			if back != r || back.Source() != a.Unmap() {
				t.Errorf("%s %d: %+v", src, sport, back)
			}
		}
	}
}

func TestNewKeyPairClamped(t *testing.T) {
	a, b := newKeyPair(), newKeyPair()
	if a.priv == b.priv || a.priv[0]&7 != 0 || a.priv[31]&0xc0 != 0x40 {
		t.Errorf("keys %x %x", a.priv, b.priv)
	}
	if keyPairFrom(a.priv).pub != a.pub {
		t.Error("public key does not follow from the private key")
	}
}

// FuzzOpenModern: whatever a knocker under test sends, opening it and
// judging its request neither panics nor opens a datagram of another
// length, and the knock it was seeded with opens to its sender.
func FuzzOpenModern(f *testing.F) {
	server := newKeyPair()
	client := newKeyPair()
	good, err := sealSpec{client: client, server: server.pub, ephemeral: newKeyPair().priv,
		request: newRequest(1, 22, netip.MustParseAddr("198.18.0.2"), 0).bytes()}.seal(server.pub)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:100])
	f.Add([]byte{modernMagic, modernTypeKnock})
	f.Fuzz(func(t *testing.T, d []byte) {
		key, req, err := openModern(server, d)
		if err != nil {
			return
		}
		if len(d) != modernKnockLen || bytes.Equal(d, good) && key != client.pub {
			t.Fatalf("opened %d bytes to %x", len(d), key)
		}
		r, err := parseRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = r.check()
		_ = r.Source()
	})
}
