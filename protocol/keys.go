package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
)

// KeySize is the size of an X25519 public or private key in bytes.
const KeySize = 32

// KeyTextLen is the length of a key in its text form (MODERN-12.2): the 32
// bytes in standard base64 with padding, as WireGuard's wg genkey and wg
// pubkey print them.
const KeyTextLen = 44

// PublicKey is an X25519 public key: a guest's (in the guest list) or a
// doorman's (in a knocker's configuration). It is a comparable value type
// usable as a map key; the zero value is no key.
type PublicKey [KeySize]byte

// PrivateKey is an X25519 private key. It hides itself from fmt and log/slog;
// Base64 is the only way to print it.
type PrivateKey [KeySize]byte

// Key errors. Parse functions wrap them with what was wrong.
var (
	// ErrKeySyntax: the text is not 44 characters of standard base64
	// encoding 32 bytes.
	ErrKeySyntax = errors.New("not a key: want 44 characters of base64 (as wg genkey, wg pubkey, knock keygen and doormand keygen print)")
	// ErrWeakKey: the public key is a point of small order (or zero): every
	// Diffie-Hellman result with it is zero, so it cannot authenticate
	// anyone (MODERN-12.2/3).
	ErrWeakKey = errors.New("not a usable X25519 public key (a point of small order)")
	// ErrZeroKey: the private key is all zero bytes, which no key generator
	// produces; the file was most likely truncated or copied from /dev/zero.
	ErrZeroKey = errors.New("private key is all zero bytes")
)

// NewPrivateKey draws a private key from rand, which must be a
// cryptographically secure generator such as crypto/rand.Reader, and clamps
// it as wg genkey does (MODERN-12.2/1). X25519 clamps every scalar anyway;
// clamping here makes the key files byte-for-byte like WireGuard's.
func NewPrivateKey(rand io.Reader) (PrivateKey, error) {
	var k PrivateKey
	if _, err := io.ReadFull(rand, k[:]); err != nil {
		return PrivateKey{}, fmt.Errorf("generate key: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// Public returns the public key of k.
func (k *PrivateKey) Public() PublicKey {
	priv, err := ecdh.X25519().NewPrivateKey(k[:])
	if err != nil {
		// Every 32-byte string is an X25519 private key; NewPrivateKey
		// fails only for other lengths.
		panic("protocol: X25519 private key: " + err.Error())
	}
	var p PublicKey
	copy(p[:], priv.PublicKey().Bytes())
	return p
}

// IsZero reports whether k is all zero bytes.
func (k *PrivateKey) IsZero() bool {
	var zero PrivateKey
	return subtle.ConstantTimeCompare(k[:], zero[:]) == 1
}

// Base64 returns the key's text form, for writing a key file. It is the
// only method that reveals the key.
func (k *PrivateKey) Base64() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String returns a placeholder, never the key.
func (PrivateKey) String() string { return "[redacted]" }

// GoString returns a placeholder, never the key (for %#v).
func (PrivateKey) GoString() string { return "protocol.PrivateKey{[redacted]}" }

// LogValue implements slog.LogValuer.
func (PrivateKey) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// String returns the key's text form (MODERN-12.2).
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// IsZero reports whether k is the zero value (no key).
func (k PublicKey) IsZero() bool { return k == PublicKey{} }

// Check reports whether k can take part in a knock: ErrWeakKey for the
// zero key and every other point of small order, whose Diffie-Hellman
// results are all zero whatever the other key (MODERN-12.2/3).
func (k PublicKey) Check() error {
	pub, err := ecdh.X25519().NewPublicKey(k[:])
	if err != nil {
		return ErrWeakKey
	}
	// Any scalar will do: a clamped scalar is a multiple of 8, so the
	// product with a point of order dividing 8 is the identity, which
	// crypto/ecdh reports as an error.
	probe, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{0x5a}, KeySize))
	if err != nil {
		panic("protocol: X25519 probe key: " + err.Error())
	}
	if _, err := probe.ECDH(pub); err != nil {
		return ErrWeakKey
	}
	return nil
}

// ParsePublicKey parses a public key's text form and checks it (Check).
func ParsePublicKey(s string) (PublicKey, error) {
	b, err := decodeKey(s)
	if err != nil {
		return PublicKey{}, err
	}
	k := PublicKey(b)
	if err := k.Check(); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// ParsePrivateKey parses a private key's text form. Errors never contain s.
func ParsePrivateKey(s string) (PrivateKey, error) {
	b, err := decodeKey(s)
	if err != nil {
		return PrivateKey{}, err
	}
	k := PrivateKey(b)
	clear(b[:])
	if k.IsZero() {
		return PrivateKey{}, ErrZeroKey
	}
	return k, nil
}

// decodeKey decodes exactly KeyTextLen characters of padded standard
// base64. The strict decoder refuses non-canonical trailing bits, so each
// key has one text form.
func decodeKey(s string) ([KeySize]byte, error) {
	var k [KeySize]byte
	if len(s) != KeyTextLen {
		return k, fmt.Errorf("%w; got %d characters", ErrKeySyntax, len(s))
	}
	var buf [KeySize + 2]byte
	n, err := base64.StdEncoding.Strict().Decode(buf[:], []byte(s))
	if err != nil || n != KeySize {
		clear(buf[:])
		return k, ErrKeySyntax
	}
	copy(k[:], buf[:KeySize])
	clear(buf[:])
	return k, nil
}

// KeyFileError reports a key file whose content is not one key. It names
// the line but never shows the line's text: it may hold a private key.
type KeyFileError struct {
	Line int // 1-based; 0 when the problem is the file as a whole
	Err  error
}

func (e *KeyFileError) Error() string {
	if e.Line == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

// Unwrap returns the cause, such as ErrKeySyntax.
func (e *KeyFileError) Unwrap() error { return e.Err }

// errNoKey and errTwoKeys are the file-level KeyFileError causes.
var (
	errNoKey   = errors.New("no key in the file")
	errTwoKeys = errors.New("a second key; a key file holds one key")
)

// ParseKeyFileText returns the one key in the text of a key file
// (MODERN-12.2): a line holding the key's text form, optionally surrounded
// by blanks, with blank lines and lines starting with '#' around it (wg
// genkey writes the key and a newline). Errors are *KeyFileError values.
// The caller turns the bytes into a PrivateKey or PublicKey.
func ParseKeyFileText(data []byte) ([KeySize]byte, error) {
	var key [KeySize]byte
	found := 0
	for n, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		if found != 0 {
			clear(key[:])
			return key, &KeyFileError{Line: n + 1, Err: errTwoKeys}
		}
		k, err := decodeKey(string(line))
		if err != nil {
			return key, &KeyFileError{Line: n + 1, Err: err}
		}
		key, found = k, n+1
	}
	if found == 0 {
		return key, &KeyFileError{Err: errNoKey}
	}
	return key, nil
}
