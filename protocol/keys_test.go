package protocol

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

// wg genkey / wg pubkey output for one key (RFC 7748 section 6.1's Alice
// key, as WireGuard prints keys): the text form is WireGuard's (MODERN-12.2).
const (
	rfc7748AlicePriv = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
	rfc7748AlicePub  = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
)

// TestKeyKnownAnswer: the public key of RFC 7748's test key, in base64
// (MODERN-12.2).
func TestKeyKnownAnswer(t *testing.T) {
	k, err := ParsePrivateKey(rfc7748AlicePriv)
	if err != nil {
		t.Fatal(err)
	}
	if got := k.Public().String(); got != rfc7748AlicePub {
		t.Fatalf("public key %s, want %s", got, rfc7748AlicePub)
	}
	if k.Base64() != rfc7748AlicePriv {
		t.Fatalf("Base64 %s", k.Base64())
	}
	p, err := ParsePublicKey(rfc7748AlicePub)
	if err != nil || p != k.Public() {
		t.Fatalf("ParsePublicKey: %v %v", p, err)
	}
}

// TestNewPrivateKeyClamped: generated keys are clamped as wg genkey's are,
// and fresh (MODERN-12.2/1).
func TestNewPrivateKeyClamped(t *testing.T) {
	seen := map[PrivateKey]bool{}
	for range 50 {
		k, err := NewPrivateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if k[0]&7 != 0 || k[31]&0x80 != 0 || k[31]&0x40 == 0 {
			t.Fatalf("key not clamped: %x %x", k[0], k[31])
		}
		if seen[k] {
			t.Fatal("repeated key")
		}
		seen[k] = true
		if err := k.Public().Check(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewPrivateKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Fatal("short random source accepted")
	}
}

// TestParseKeyRejects: only 44 characters of canonical padded base64 are
// a key; small-order public keys and the zero private key are refused
// (MODERN-12.2, MODERN-12.2/3).
func TestParseKeyRejects(t *testing.T) {
	for _, s := range []string{
		"", rfc7748AlicePub[:43], rfc7748AlicePub + "=", rfc7748AlicePub + " ",
		strings.ReplaceAll(rfc7748AlicePub, "/", "_"),  // URL alphabet
		rfc7748AlicePub[:42] + "p=",                    // non-canonical trailing bits
		"hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo",  // unpadded
		"aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29y", // 33 bytes
	} {
		if _, err := ParsePublicKey(s); !errors.Is(err, ErrKeySyntax) {
			t.Errorf("ParsePublicKey(%q) = %v, want ErrKeySyntax", s, err)
		}
		if _, err := ParsePrivateKey(s); !errors.Is(err, ErrKeySyntax) {
			t.Errorf("ParsePrivateKey(%q) = %v, want ErrKeySyntax", s, err)
		}
	}
	for _, s := range []string{
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 0
		"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", // 1
		"4Ot6fDtBuK4WVuP68Z/EatoJjeucMrH9hmIFFl9JuAA=", // order 8
		"X5yVvKNQjCSx0LFVnIPvWwREXMRYHI6G2CJO3dCfEVc=", // order 8
		"7P///////////////////////////////////////38=", // p-1
		"7f///////////////////////////////////////38=", // p, non-canonical 0
		"7v///////////////////////////////////////38=", // p+1, non-canonical 1
	} {
		if _, err := ParsePublicKey(s); !errors.Is(err, ErrWeakKey) {
			t.Errorf("ParsePublicKey(%s) = %v, want ErrWeakKey", s, err)
		}
	}
	if _, err := ParsePrivateKey("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="); !errors.Is(err, ErrZeroKey) {
		t.Errorf("zero private key: %v", err)
	}
}

// TestPrivateKeyRedacted: a private key never prints itself by accident.
func TestPrivateKeyRedacted(t *testing.T) {
	k, _ := ParsePrivateKey(rfc7748AlicePriv)
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("x", "key", k)
	for _, s := range []string{fmt.Sprint(k), fmt.Sprintf("%v %+v %#v %s", k, k, k, k), logged.String()} {
		if strings.Contains(s, rfc7748AlicePriv[:10]) || strings.Contains(s, "119 7 109") {
			t.Errorf("key leaks: %s", s)
		}
	}
	if _, err := ParsePrivateKey(rfc7748AlicePriv[:43] + "!"); err == nil || strings.Contains(err.Error(), rfc7748AlicePriv[:10]) {
		t.Errorf("error leaks the key text: %v", err)
	}
}

// TestParseKeyFileText: one key per file, comments and blanks around it,
// errors by line without the line's text (MODERN-12.2).
func TestParseKeyFileText(t *testing.T) {
	k, _ := ParsePrivateKey(rfc7748AlicePriv)
	for _, text := range []string{
		rfc7748AlicePriv, rfc7748AlicePriv + "\n", rfc7748AlicePriv + "\r\n",
		"# doormand key\n\n  " + rfc7748AlicePriv + "  \n# end\n",
	} {
		got, err := ParseKeyFileText([]byte(text))
		if err != nil || PrivateKey(got) != k {
			t.Errorf("%q: %v", text, err)
		}
	}
	for _, c := range []struct {
		text string
		line int
		want error
	}{
		{"", 0, errNoKey},
		{"# only a comment\n\n", 0, errNoKey},
		{"\n" + rfc7748AlicePriv + " x\n", 2, ErrKeySyntax},
		{rfc7748AlicePriv + "\n" + rfc7748AlicePub + "\n", 2, errTwoKeys},
		{"private-key = " + rfc7748AlicePriv, 1, ErrKeySyntax},
	} {
		_, err := ParseKeyFileText([]byte(c.text))
		var kfe *KeyFileError
		if !errors.As(err, &kfe) || kfe.Line != c.line || !errors.Is(err, c.want) {
			t.Errorf("%q: %v, want line %d %v", c.text, err, c.line, c.want)
			continue
		}
		if strings.Contains(err.Error(), rfc7748AlicePriv[:10]) {
			t.Errorf("error shows the key: %v", err)
		}
	}
}
