//go:build linux

package conformance

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net/netip"

	"golang.org/x/crypto/blake2s"
	"golang.org/x/crypto/chacha20poly1305"
	"golang.org/x/crypto/curve25519"
)

// The suite builds and opens modern knocks (spec section 12) on its own,
// from the primitives, as spec/vectors/gen_modern.py does: Noise message 1
// of pattern X written out step by step. It does not use the Go
// implementation's protocol package, so that a defect there cannot hide
// one in doormand, and so that it can build the knocks a doorman must
// refuse (a zero Diffie-Hellman result, another prologue, a malformed
// request), which no correct sealer makes. TestModernVectors checks it
// against every vector of modern.json.

// Sizes and offsets of a modern knock (MODERN-12.3, MODERN-12.7).
const (
	modernMagic      = 0xD2
	modernTypeKnock  = 0x01
	modernKnockLen   = 178
	modernRequestLen = 64
	offEphemeral     = 2
	offStatic        = 34
	offRequest       = 82
	offMAC1          = 162
)

// Protocol strings (MODERN-12.5, MODERN-12.6).
const (
	noiseProtocolName = "Noise_X_25519_ChaChaPoly_BLAKE2s"
	prologueLabel     = "doorman modern knock"
	mac1Label         = "doorman mac1"
)

// modernHeader is the magic and type bytes of a knock of this version.
var modernHeader = []byte{modernMagic, modernTypeKnock}

// keyPair is an X25519 key pair (MODERN-12.2).
type keyPair struct{ priv, pub [32]byte }

// newKeyPair draws a private key, clamped as wg genkey clamps it.
func newKeyPair() keyPair {
	var p [32]byte
	if _, err := rand.Read(p[:]); err != nil {
		panic("conformance: crypto/rand: " + err.Error())
	}
	p[0] &= 248
	p[31] = p[31]&127 | 64
	return keyPairFrom(p)
}

// keyPairFrom returns the key pair of a private key.
func keyPairFrom(priv [32]byte) keyPair {
	pub, err := curve25519.X25519(priv[:], curve25519.Basepoint)
	if err != nil {
		panic("conformance: X25519 base point: " + err.Error()) // never for the base point
	}
	return keyPair{priv: priv, pub: [32]byte(pub)}
}

// keyText is a key's text form: standard base64 with padding (MODERN-12.2).
func keyText(k [32]byte) string { return base64.StdEncoding.EncodeToString(k[:]) }

// parseKeyText reads a key's text form.
func parseKeyText(s string) ([32]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(b) != 32 {
		return [32]byte{}, fmt.Errorf("not a key in text form (44 characters of base64): %q", s)
	}
	return [32]byte(b), nil
}

// smallOrderPoint is an X25519 public key of order 8: every
// Diffie-Hellman result with it is zero (MODERN-12.2/3).
var smallOrderPoint = [32]byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a,
	0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}

func newBlake2s() hash.Hash {
	h, _ := blake2s.New256(nil)
	return h
}

// noiseState is Noise's SymmetricState for BLAKE2s and ChaChaPoly.
type noiseState struct {
	h, ck, k [32]byte
	n        uint64
}

func newNoiseState() *noiseState {
	// The name is exactly 32 bytes (HASHLEN), so h is the name itself.
	s := &noiseState{}
	copy(s.h[:], noiseProtocolName)
	s.ck = s.h
	return s
}

func (s *noiseState) mixHash(data []byte) {
	s.h = blake2s.Sum256(append(s.h[:len(s.h):len(s.h)], data...))
}

func hmacBlake2s(key []byte, data ...[]byte) []byte {
	m := hmac.New(newBlake2s, key)
	for _, d := range data {
		m.Write(d)
	}
	return m.Sum(nil)
}

// mixKey is Noise's MixKey: HKDF with two outputs.
func (s *noiseState) mixKey(ikm []byte) {
	temp := hmacBlake2s(s.ck[:], ikm)
	out1 := hmacBlake2s(temp, []byte{1})
	out2 := hmacBlake2s(temp, out1, []byte{2})
	s.ck, s.k, s.n = [32]byte(out1), [32]byte(out2), 0
}

func (s *noiseState) nonce() []byte {
	var n [12]byte
	binary.LittleEndian.PutUint64(n[4:], s.n)
	return n[:]
}

func (s *noiseState) encryptAndHash(plain []byte) []byte {
	aead, _ := chacha20poly1305.New(s.k[:])
	c := aead.Seal(nil, s.nonce(), plain, s.h[:])
	s.n++
	s.mixHash(c)
	return c
}

func (s *noiseState) decryptAndHash(c []byte) ([]byte, error) {
	aead, _ := chacha20poly1305.New(s.k[:])
	p, err := aead.Open(nil, s.nonce(), c, s.h[:])
	if err != nil {
		return nil, err
	}
	s.n++
	s.mixHash(c)
	return p, nil
}

// mac1Of returns mac1 of body for the doorman whose public key is server
// (MODERN-12.6).
func mac1Of(server [32]byte, body []byte) []byte {
	key := blake2s.Sum256(append([]byte(mac1Label), server[:]...))
	m, _ := blake2s.New128(key[:])
	m.Write(body)
	return m.Sum(nil)
}

// remac replaces a datagram's mac1 with the one for server, so that a
// tampered knock gets past the cheap checks.
func remac(d []byte, server [32]byte) []byte {
	body := d[:min(len(d), offMAC1):min(len(d), offMAC1)]
	return append(append([]byte(nil), body...), mac1Of(server, body)...)
}

// sealSpec says how to build a modern knock. The fields after request
// replace a value or a Diffie-Hellman result, to build knocks a doorman
// must refuse (as gen_modern.py's keyword arguments do).
type sealSpec struct {
	client    keyPair
	server    [32]byte // the doorman the Noise message is encrypted to
	ephemeral [32]byte // the ephemeral private key (X25519 clamps it)
	request   []byte   // the 64-byte request

	prologue  []byte    // nil: "doorman modern knock" || 0xD2 0x01
	ephPub    *[32]byte // the e sent, instead of the ephemeral's public key
	clientPub *[32]byte // the s sent, instead of the client's public key
	es, ss    *[32]byte // Diffie-Hellman results used instead of computing them
}

// noiseMessage returns e || enc(s) || enc(request).
func (sp sealSpec) noiseMessage() ([]byte, error) {
	st := newNoiseState()
	prologue := sp.prologue
	if prologue == nil {
		prologue = append([]byte(prologueLabel), modernHeader...)
	}
	st.mixHash(prologue)
	st.mixHash(sp.server[:]) // pre-message: <- s
	var ePub [32]byte
	if sp.ephPub != nil {
		ePub = *sp.ephPub
	} else {
		ePub = keyPairFrom(sp.ephemeral).pub
	}
	st.mixHash(ePub[:]) // -> e
	es := sp.es
	if es == nil {
		r, err := curve25519.X25519(sp.ephemeral[:], sp.server[:])
		if err != nil {
			return nil, fmt.Errorf("es: %w", err)
		}
		es = (*[32]byte)(r)
	}
	st.mixKey(es[:])
	sPub := sp.client.pub
	if sp.clientPub != nil {
		sPub = *sp.clientPub
	}
	encS := st.encryptAndHash(sPub[:])
	ss := sp.ss
	if ss == nil {
		r, err := curve25519.X25519(sp.client.priv[:], sp.server[:])
		if err != nil {
			return nil, fmt.Errorf("ss: %w", err)
		}
		ss = (*[32]byte)(r)
	}
	st.mixKey(ss[:])
	encReq := st.encryptAndHash(sp.request)
	out := append(ePub[:], encS...)
	return append(out, encReq...), nil
}

// seal returns the whole datagram with mac1 for mac1For.
func (sp sealSpec) seal(mac1For [32]byte) ([]byte, error) {
	msg, err := sp.noiseMessage()
	if err != nil {
		return nil, err
	}
	body := append(append([]byte(nil), modernHeader...), msg...)
	d := append(body, mac1Of(mac1For, body)...)
	if len(d) != modernKnockLen && len(sp.request) == modernRequestLen {
		return nil, fmt.Errorf("built a knock of %d bytes, want %d", len(d), modernKnockLen)
	}
	return d, nil
}

// Errors of openModern.
var (
	errModernForm = errors.New("not a modern knock of this version")
	errModernMAC1 = errors.New("mac1 does not match")
	errModernAEAD = errors.New("does not decrypt")
)

// openModern opens a knock made for server as a doorman does (MODERN-12.5,
// MODERN-12.6): it returns the knocker's static key and the request bytes.
// The client cases use it on what a knocker sends.
func openModern(server keyPair, d []byte) (client [32]byte, request []byte, err error) {
	if len(d) != modernKnockLen || d[0] != modernMagic || d[1] != modernTypeKnock {
		return client, nil, fmt.Errorf("%w: %d bytes starting % x", errModernForm, len(d), d[:min(2, len(d))])
	}
	if subtle.ConstantTimeCompare(mac1Of(server.pub, d[:offMAC1]), d[offMAC1:]) != 1 {
		return client, nil, errModernMAC1
	}
	st := newNoiseState()
	st.mixHash(append([]byte(prologueLabel), modernHeader...))
	st.mixHash(server.pub[:])
	e := d[offEphemeral:offStatic]
	st.mixHash(e)
	es, err := curve25519.X25519(server.priv[:], e)
	if err != nil {
		return client, nil, fmt.Errorf("%w: es: %w", errModernAEAD, err)
	}
	st.mixKey(es)
	s, err := st.decryptAndHash(d[offStatic:offRequest])
	if err != nil {
		return client, nil, fmt.Errorf("%w: the static key", errModernAEAD)
	}
	ss, err := curve25519.X25519(server.priv[:], s)
	if err != nil {
		return client, nil, fmt.Errorf("%w: ss: %w", errModernAEAD, err)
	}
	st.mixKey(ss)
	req, err := st.decryptAndHash(d[offRequest:offMAC1])
	if err != nil {
		return client, nil, fmt.Errorf("%w: the request", errModernAEAD)
	}
	return [32]byte(s), req, nil
}

// modernRequest is the 64-byte request of MODERN-12.7, field by field, so
// that any field can be given a value MODERN-12.8 forbids.
type modernRequest struct {
	Time      uint64
	Port      uint16
	Flags     uint8
	Family    uint8
	Addr      [16]byte
	SrcPort   uint16
	FwdFamily uint8
	FwdAddr   [16]byte
	FwdPort   uint16
	Padding   [15]byte
}

// newRequest returns the canonical request: src is the stated source
// address (the zero Addr: as seen), sport the stated TCP source port (0:
// none).
func newRequest(t uint64, port uint16, src netip.Addr, sport uint16) modernRequest {
	r := modernRequest{Time: t, Port: port, SrcPort: sport}
	if sport != 0 {
		r.Flags = 0x01
	}
	switch src = src.Unmap(); {
	case src.Is4():
		r.Family = 4
		a := src.As4()
		copy(r.Addr[:], a[:])
	case src.Is6():
		r.Family = 6
		r.Addr = src.As16()
	}
	return r
}

func (r modernRequest) bytes() []byte {
	b := make([]byte, 0, modernRequestLen)
	b = binary.BigEndian.AppendUint64(b, r.Time)
	b = binary.BigEndian.AppendUint16(b, r.Port)
	b = append(b, r.Flags, r.Family)
	b = append(b, r.Addr[:]...)
	b = binary.BigEndian.AppendUint16(b, r.SrcPort)
	b = append(b, r.FwdFamily)
	b = append(b, r.FwdAddr[:]...)
	b = binary.BigEndian.AppendUint16(b, r.FwdPort)
	return append(b, r.Padding[:]...)
}

// parseRequest splits 64 request bytes into their fields, without judging
// them (check does).
func parseRequest(b []byte) (modernRequest, error) {
	var r modernRequest
	if len(b) != modernRequestLen {
		return r, fmt.Errorf("request of %d bytes, want %d", len(b), modernRequestLen)
	}
	r.Time = binary.BigEndian.Uint64(b[0:])
	r.Port = binary.BigEndian.Uint16(b[8:])
	r.Flags, r.Family = b[10], b[11]
	copy(r.Addr[:], b[12:28])
	r.SrcPort = binary.BigEndian.Uint16(b[28:])
	r.FwdFamily = b[30]
	copy(r.FwdAddr[:], b[31:47])
	r.FwdPort = binary.BigEndian.Uint16(b[47:])
	copy(r.Padding[:], b[49:])
	return r, nil
}

// check returns an error naming the first field MODERN-12.8 finds at
// fault, or nil for a canonical request.
func (r modernRequest) check() error {
	zero := func(b []byte) bool {
		for _, c := range b {
			if c != 0 {
				return false
			}
		}
		return true
	}
	src := r.Source()
	switch {
	case r.Port == 0:
		return errors.New("port: 0")
	case r.Flags&^0x01 != 0, r.Flags&0x01 != 0 && r.SrcPort == 0, r.Flags&0x01 == 0 && r.SrcPort != 0:
		return fmt.Errorf("flags %#02x with source port %d", r.Flags, r.SrcPort)
	case r.Family != 0 && r.Family != 4 && r.Family != 6,
		r.Family == 0 && !zero(r.Addr[:]),
		r.Family == 4 && !zero(r.Addr[4:]),
		r.Family == 6 && src.Is4In6(),
		r.Family != 0 && src.IsUnspecified():
		return fmt.Errorf("source: family %d, address % x", r.Family, r.Addr)
	case r.FwdFamily != 0 || !zero(r.FwdAddr[:]) || r.FwdPort != 0:
		return errors.New("forward target: not zero")
	case !zero(r.Padding[:]):
		return errors.New("padding: not zero")
	}
	return nil
}

// Source returns the stated source address (the zero Addr when the
// request states none or an unknown family).
func (r modernRequest) Source() netip.Addr {
	switch r.Family {
	case 4:
		return netip.AddrFrom4([4]byte(r.Addr[:4]))
	case 6:
		return netip.AddrFrom16(r.Addr)
	}
	return netip.Addr{}
}
