package protocol

import (
	"bytes"
	"crypto/ecdh"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/netip"
	"sync"

	"github.com/flynn/noise"
	"golang.org/x/crypto/blake2s"
)

// Modern knock wire format (spec section 12, MODERN-12.3 to MODERN-12.8).
// Every modern knock has the same length: the request is padded to a fixed
// size, so the length of a datagram says nothing about what it asks for.
//
//	offset  size  field
//	     0     1  0xD2 (ModernMagic, CLASSIC-2.6)
//	     1     1  message type, ModernTypeKnock
//	     2    32  Noise e: the knocker's ephemeral public key
//	    34    48  Noise s: the knocker's static public key, encrypted (+16 tag)
//	    82    80  Noise payload: the request, encrypted (+16 tag)
//	   162    16  mac1 over bytes 0-161, keyed with the doorman's public key
//	   178
const (
	// ModernTypeKnock is the message type of a knock in this version.
	ModernTypeKnock = 0x01
	// ModernHeaderLen is the magic byte and the type byte.
	ModernHeaderLen = 2
	// ModernRequestLen is the size of the request (the Noise payload)
	// before encryption, padding included (MODERN-12.7).
	ModernRequestLen = 64
	// ModernMAC1Len is the size of mac1 (MODERN-12.6).
	ModernMAC1Len = 16
	// aeadTag is the size of a ChaCha20-Poly1305 authentication tag.
	aeadTag = 16
	// ModernKnockLen is the length of every modern knock (MODERN-12.3).
	ModernKnockLen = ModernHeaderLen + KeySize + KeySize + aeadTag + ModernRequestLen + aeadTag + ModernMAC1Len

	offEphemeral = ModernHeaderLen
	offStatic    = offEphemeral + KeySize
	offRequest   = offStatic + KeySize + aeadTag
	offMAC1      = offRequest + ModernRequestLen + aeadTag
)

// Protocol-separation strings (MODERN-12.5, MODERN-12.6). A knock made with
// other strings, by another protocol or another version, never verifies.
const (
	// NoiseProtocolName is the Noise protocol the knock is message 1 of.
	NoiseProtocolName = "Noise_X_25519_ChaChaPoly_BLAKE2s"
	// ModernPrologueLabel starts the Noise prologue; the header bytes
	// follow it, so the AEAD also covers the type byte.
	ModernPrologueLabel = "doorman modern knock"
	// ModernMAC1Label is hashed with the doorman's public key into the
	// mac1 key, as WireGuard's "mac1----" is.
	ModernMAC1Label = "doorman mac1"
)

// Request layout (MODERN-12.7): offsets into the 64-byte Noise payload.
const (
	reqTime       = 0  // uint64 big-endian, Unix time in nanoseconds
	reqPort       = 8  // uint16 big-endian, the TCP port, 1-65535
	reqFlags      = 10 // bit 0: source port stated; others zero
	reqSrcFamily  = 11 // 0 as seen, 4 IPv4, 6 IPv6
	reqSrcAddr    = 12 // 16 bytes; IPv4 in the first 4, the rest zero
	reqSrcPort    = 28 // uint16 big-endian, non-zero iff flag bit 0
	reqFwdFamily  = 30 // reserved forward target: 0 (none) in this version
	reqFwdAddr    = 31 // 16 bytes, zero
	reqFwdPort    = 47 // uint16, zero
	reqPadding    = 49 // zero up to ModernRequestLen
	flagSrcPort   = 0x01
	familyAsSeen  = 0
	familyIPv4    = 4
	familyIPv6    = 6
	familyNoneFwd = 0
)

// Modern fields named in errors.
const (
	FieldType    Field = "type"
	FieldFlags   Field = "flags"
	FieldSource  Field = "source"
	FieldForward Field = "forward"
	FieldPadding Field = "padding"
)

// Errors of a modern knock's form, checked before any public-key work
// (MODERN-12.3, MODERN-12.4). *FieldError sentinels, like the classic ones.
var (
	ErrModernLength = &FieldError{FieldLength, fmt.Sprintf("a modern knock is %d bytes", ModernKnockLen)}
	ErrNotModern    = &FieldError{FieldType, "first byte is not 0xD2: not a modern knock"}
	ErrModernType   = &FieldError{FieldType, fmt.Sprintf("message type is not %#02x: unsupported modern version", ModernTypeKnock)}
)

// Errors of the decrypted request (MODERN-12.8).
var (
	ErrModernPort    = &FieldError{FieldPort, "port 0"}
	ErrModernFlags   = &FieldError{FieldFlags, "unknown flag bits, or source port and its flag disagree"}
	ErrModernSource  = &FieldError{FieldSource, "source family not 0, 4 or 6, or the address not in its canonical form"}
	ErrModernForward = &FieldError{FieldForward, "forward target set: not supported in this version"}
	ErrModernPadding = &FieldError{FieldPadding, "padding bytes not zero"}
)

// Verification errors of a modern knock, in the order of MODERN-12.11.
var (
	// ErrMAC1: mac1 does not match; the knock was not made for this
	// doorman's public key, or it is junk (MODERN-12.6/2).
	ErrMAC1 = errors.New("mac1 does not match this doorman's key")
	// ErrDecrypt: the Noise message does not decrypt and authenticate
	// under this doorman's private key (MODERN-12.5).
	ErrDecrypt = errors.New("does not decrypt: not made for this doorman's key, or altered")
	// ErrClockSkew: the timestamp is outside the time window
	// (MODERN-12.14). CheckTime returns the skew alongside.
	ErrClockSkew = errors.New("timestamp outside the time window")
	// ErrSourceMismatch: the knock states a source address and the packet
	// came from another (MODERN-12.15).
	ErrSourceMismatch = errors.New("packet source differs from the source the knock states")
)

// Request is what a modern knock asks for (MODERN-12.7). The zero value is
// not a valid request (Port 0).
type Request struct {
	// Time is the knocker's clock when it built the knock, in
	// nanoseconds since the Unix epoch (MODERN-12.9).
	Time uint64
	// Port is the TCP port to open.
	Port uint16
	// Source is the address the knocker says it sends from; the zero
	// Addr means "as seen": the doorman takes the packet's source
	// address. A stated source binds the knock to that address
	// (MODERN-12.15); an IPv4-mapped address is stated as IPv4.
	Source netip.Addr
	// SourcePort, when not 0, is the TCP source port of the connection
	// the door is for: the door then admits exactly that 4-tuple
	// (MODERN-12.18).
	SourcePort uint16
}

// AsSeen reports whether the request leaves the source address to the
// doorman (no address stated).
func (r *Request) AsSeen() bool { return !r.Source.IsValid() }

// encode writes r's canonical request bytes into p (MODERN-12.7); it
// refuses a request that no doorman accepts (MODERN-12.8/2).
func (r *Request) encode(p *[ModernRequestLen]byte) error {
	clear(p[:])
	if r.Port == 0 {
		return ErrModernPort
	}
	binary.BigEndian.PutUint64(p[reqTime:], r.Time)
	binary.BigEndian.PutUint16(p[reqPort:], r.Port)
	if r.SourcePort != 0 {
		p[reqFlags] = flagSrcPort
		binary.BigEndian.PutUint16(p[reqSrcPort:], r.SourcePort)
	}
	if r.Source.IsValid() {
		a := r.Source.Unmap()
		if a.Zone() != "" || a.IsUnspecified() {
			return ErrModernSource
		}
		if a.Is4() {
			p[reqSrcFamily] = familyIPv4
			b := a.As4()
			copy(p[reqSrcAddr:], b[:])
		} else {
			p[reqSrcFamily] = familyIPv6
			b := a.As16()
			copy(p[reqSrcAddr:], b[:])
		}
	}
	return nil
}

// decodeRequest parses the 64 decrypted request bytes strictly
// (MODERN-12.8/1): every byte has one meaning or must be zero, so each
// request has exactly one encoding. It does not allocate.
func decodeRequest(p []byte, r *Request) error {
	*r = Request{}
	port := binary.BigEndian.Uint16(p[reqPort:])
	if port == 0 {
		return ErrModernPort
	}
	flags := p[reqFlags]
	srcPort := binary.BigEndian.Uint16(p[reqSrcPort:])
	if flags&^flagSrcPort != 0 || (flags&flagSrcPort != 0) != (srcPort != 0) {
		return ErrModernFlags
	}
	addr := p[reqSrcAddr : reqSrcAddr+16]
	var src netip.Addr
	switch p[reqSrcFamily] {
	case familyAsSeen:
		if !allZero(addr) {
			return ErrModernSource
		}
	case familyIPv4:
		if !allZero(addr[4:]) {
			return ErrModernSource
		}
		src = netip.AddrFrom4([4]byte(addr[:4]))
	case familyIPv6:
		src = netip.AddrFrom16([16]byte(addr))
		if src.Is4In6() {
			return ErrModernSource // an IPv4 source is stated as family 4
		}
	default:
		return ErrModernSource
	}
	if src.IsValid() && src.IsUnspecified() {
		return ErrModernSource
	}
	if p[reqFwdFamily] != familyNoneFwd || !allZero(p[reqFwdAddr:reqPadding]) {
		return ErrModernForward
	}
	if !allZero(p[reqPadding:ModernRequestLen]) {
		return ErrModernPadding
	}
	r.Time = binary.BigEndian.Uint64(p[reqTime:])
	r.Port = port
	r.Source = src
	r.SourcePort = srcPort
	return nil
}

func allZero(b []byte) bool {
	var acc byte
	for _, c := range b {
		acc |= c
	}
	return acc == 0
}

// ModernKnock is an opened modern knock: who sent it and what it asks.
type ModernKnock struct {
	// Client is the knocker's static public key, authenticated by the
	// Noise X handshake message: it identifies the guest (MODERN-12.13).
	Client PublicKey
	Request
}

var (
	cipherSuite = noise.NewCipherSuite(noise.DH25519, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	prologue    = []byte(ModernPrologueLabel + "\xd2\x01")
)

// modernMAC1Key returns the mac1 key for a doorman's public key:
// BLAKE2s-256(ModernMAC1Label || public key) (MODERN-12.6).
func modernMAC1Key(server PublicKey) [blake2s.Size]byte {
	var in [len(ModernMAC1Label) + KeySize]byte
	copy(in[:], ModernMAC1Label)
	copy(in[len(ModernMAC1Label):], server[:])
	return blake2s.Sum256(in[:])
}

// SealKnock appends to dst the modern knock for req from the knocker whose
// private key is client to the doorman whose public key is server
// (MODERN-12.3 to MODERN-12.10). rand supplies the 32 bytes of the
// ephemeral private key and must be crypto/rand.Reader except in tests
// with fixed vectors (MODERN-12.10). It checks the server key (Check) and
// refuses a request no doorman would accept.
func SealKnock(dst []byte, client *PrivateKey, server PublicKey, req *Request, rand io.Reader) ([]byte, error) {
	if err := server.Check(); err != nil {
		return dst, fmt.Errorf("doorman's public key: %w", err)
	}
	var plain [ModernRequestLen]byte
	if err := req.encode(&plain); err != nil {
		return dst, fmt.Errorf("modern knock: %w", err)
	}
	return sealRequest(dst, client, server, plain[:], rand)
}

// sealRequest seals raw request bytes; tests use it to build knocks whose
// requests SealKnock refuses to encode.
func sealRequest(dst []byte, client *PrivateKey, server PublicKey, plain []byte, rand io.Reader) ([]byte, error) {
	pub := client.Public()
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   cipherSuite,
		Random:        rand,
		Pattern:       noise.HandshakeX,
		Initiator:     true,
		Prologue:      prologue,
		StaticKeypair: noise.DHKey{Private: client[:], Public: pub[:]},
		PeerStatic:    server[:],
	})
	if err != nil {
		return dst, fmt.Errorf("modern knock: %w", err)
	}
	start := len(dst)
	dst = append(dst, ModernMagic, ModernTypeKnock)
	out, _, _, err := hs.WriteMessage(dst, plain)
	if err != nil {
		return dst[:start], fmt.Errorf("modern knock: %w", err)
	}
	dst = out
	if len(dst)-start != offMAC1 {
		return dst[:start], fmt.Errorf("modern knock: %d bytes before mac1, want %d", len(dst)-start, offMAC1)
	}
	key := modernMAC1Key(server)
	mac, _ := blake2s.New128(key[:])
	mac.Write(dst[start:])
	return mac.Sum(dst), nil
}

// Opener opens the modern knocks sent to one doorman key. It is safe for
// concurrent use.
type Opener struct {
	priv    PrivateKey
	pub     PublicKey
	mac1Key [blake2s.Size]byte
	macs    sync.Pool // *mac1State
	suite   noise.CipherSuite
}

// staticDH is noise.DH25519 for a responder whose every Diffie-Hellman
// operation uses its static key (pattern X: es and ss). It keeps that key
// parsed: x/crypto's X25519 builds a crypto/ecdh private key per call,
// which computes the public key too, doubling the public-key work of Open.
type staticDH struct {
	noise.DHFunc // names, key generation
	raw          []byte
	priv         *ecdh.PrivateKey
}

func (d staticDH) DH(privkey, pubkey []byte) ([]byte, error) {
	if !bytes.Equal(privkey, d.raw) {
		return d.DHFunc.DH(privkey, pubkey) // not the static key; never in pattern X
	}
	pub, err := ecdh.X25519().NewPublicKey(pubkey)
	if err != nil {
		return nil, err
	}
	// ECDH refuses an all-zero result, a small-order pubkey (MODERN-12.5).
	return d.priv.ECDH(pub)
}

// mac1State is a keyed BLAKE2s-128 reused across knocks: creating one
// allocates, and Precheck must not (MODERN-12.6/2).
type mac1State struct {
	h   hash.Hash
	sum [blake2s.Size]byte
}

// NewOpener returns an Opener for the doorman's private key.
func NewOpener(key *PrivateKey) *Opener {
	o := &Opener{priv: *key, pub: key.Public()}
	o.mac1Key = modernMAC1Key(o.pub)
	priv, err := ecdh.X25519().NewPrivateKey(o.priv[:])
	if err != nil {
		panic("protocol: X25519 private key: " + err.Error()) // 32 bytes are always a key
	}
	o.suite = noise.NewCipherSuite(staticDH{noise.DH25519, o.priv[:], priv}, noise.CipherChaChaPoly, noise.HashBLAKE2s)
	o.macs.New = func() any {
		h, err := blake2s.New128(o.mac1Key[:])
		if err != nil {
			panic("protocol: mac1: " + err.Error()) // the key is 32 bytes
		}
		return &mac1State{h: h}
	}
	return o
}

// PublicKey returns the doorman's public key, as knockers must know it.
func (o *Opener) PublicKey() PublicKey { return o.pub }

// Precheck runs the checks that come before any public-key work, cheapest
// first (MODERN-12.11 steps 2 and 3): the magic and type bytes, the length,
// and mac1, compared in constant time. It does not allocate and costs about
// as much as a classic verify, so junk and scanners are dropped cheaply.
func (o *Opener) Precheck(p []byte) error {
	if len(p) < ModernHeaderLen {
		return ErrModernLength
	}
	if p[0] != ModernMagic {
		return ErrNotModern
	}
	// The type before the length: a later version may have another
	// length, and "unsupported version" tells its user more.
	if p[1] != ModernTypeKnock {
		return ErrModernType
	}
	if len(p) != ModernKnockLen {
		return ErrModernLength
	}
	m := o.macs.Get().(*mac1State)
	m.h.Reset()
	m.h.Write(p[:offMAC1])
	sum := m.h.Sum(m.sum[:0])
	ok := subtle.ConstantTimeCompare(sum, p[offMAC1:]) == 1
	o.macs.Put(m)
	if !ok {
		return ErrMAC1
	}
	return nil
}

// Open runs Precheck, then the Noise X handshake read that decrypts the
// knock and authenticates the knocker's static key (MODERN-12.5), then the
// strict request decoding (MODERN-12.8/1). It does the public-key work
// (two X25519 operations), so a doorman rate-limits it per source
// (MODERN-12.12). Guest lookup, time window, source binding and the
// per-guest freshness check are the caller's (VerifyModern, MODERN-12.17).
func (o *Opener) Open(p []byte) (ModernKnock, error) {
	var k ModernKnock
	if err := o.Precheck(p); err != nil {
		return k, err
	}
	hs, err := noise.NewHandshakeState(noise.Config{
		CipherSuite:   o.suite,
		Pattern:       noise.HandshakeX,
		Initiator:     false,
		Prologue:      prologue,
		StaticKeypair: noise.DHKey{Private: o.priv[:], Public: o.pub[:]},
	})
	if err != nil {
		return k, fmt.Errorf("modern knock: %w", err)
	}
	var buf [ModernRequestLen]byte
	plain, _, _, err := hs.ReadMessage(buf[:0], p[offEphemeral:offMAC1])
	if err != nil || len(plain) != ModernRequestLen {
		return k, ErrDecrypt
	}
	defer clear(buf[:])
	if err := decodeRequest(plain, &k.Request); err != nil {
		return ModernKnock{}, err
	}
	copy(k.Client[:], hs.PeerStatic())
	return k, nil
}
