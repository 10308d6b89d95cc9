package protocol

import (
	"encoding/hex"
	"strconv"
)

// Classic knock wire limits (CLASSIC-2.1, CLASSIC-2.2).
const (
	MaxPortLen  = 5  // decimal digits of the port field
	MaxGroupLen = 32 // characters of the group field
	TagLen      = 10 // decimal digits of the tag field, always zero-padded
	MACHexLen   = 2 * MACSize

	// MinClassicLen is the shortest well-formed classic payload: a 1-digit
	// port, a 1-character group, the tag, the MAC and three spaces.
	MinClassicLen = 1 + 1 + 1 + 1 + TagLen + 1 + MACHexLen
	// MaxClassicLen is the longest well-formed classic payload without the
	// optional final newline.
	MaxClassicLen = MaxPortLen + 1 + MaxGroupLen + 1 + TagLen + 1 + MACHexLen
	// MaxSignedLen is the longest "port group tag" prefix, the HMAC key.
	MaxSignedLen = MaxClassicLen - 1 - MACHexLen
)

// Kind says which protocol version a UDP payload claims to be, judged from
// its first byte alone (CLASSIC-2.6).
type Kind uint8

// Payload kinds.
const (
	KindUnknown Kind = iota // neither classic nor a known later version
	KindClassic             // first byte an ASCII digit: a classic (0.81) knock
	KindModern              // first byte 0xD2: the modern protocol (spec section 12)
)

// ModernMagic is the first byte reserved for the modern protocol version
// (spec section 12). Classic payloads are printable ASCII starting with a
// digit, so the two can never be confused.
const ModernMagic = 0xD2

// Size limits of a modern payload (spec section 12): a capture prefilter
// may drop any datagram starting with ModernMagic outside them. Every
// modern knock of this version is exactly ModernKnockLen bytes
// (MODERN-12.3).
const (
	MinModernLen = ModernKnockLen
	MaxModernLen = ModernKnockLen
)

// Sniff classifies a payload by its first byte.
func Sniff(payload []byte) Kind {
	switch {
	case len(payload) == 0:
		return KindUnknown
	case payload[0] >= '0' && payload[0] <= '9':
		return KindClassic
	case payload[0] == ModernMagic:
		return KindModern
	}
	return KindUnknown
}

// Knock is one classic knock: the TCP port to open, the group (guest) name,
// the client's random tag and the HMAC-MD5 over them. It is a comparable
// value type; the zero value is not a valid knock (Port 0).
type Knock struct {
	Port uint16
	Tag  uint32
	MAC  [MACSize]byte

	groupLen uint8
	group    [MaxGroupLen]byte
}

// Group returns the group name. The slice aliases k; do not modify it.
func (k *Knock) Group() []byte { return k.group[:k.groupLen] }

// GroupString returns the group name as a string.
func (k *Knock) GroupString() string { return string(k.group[:k.groupLen]) }

// NewKnock returns the knock a client sends to ask for port as group, with
// the given tag and the group's secret (CLASSIC-2, CLASSIC-3). The tag must
// come from a CSPRNG (CLASSIC-3.3); knocker.NewTag draws one.
func NewKnock(port uint16, group string, tag uint32, secret []byte) (Knock, error) {
	var k Knock
	if port == 0 {
		return k, ErrPortRange
	}
	if len(group) == 0 || len(group) > MaxGroupLen || !validGroup([]byte(group)) {
		return k, errGroupBuildUp
	}
	k.Port = port
	k.Tag = tag
	k.groupLen = uint8(copy(k.group[:], group))
	k.MAC = k.Sign(secret)
	return k, nil
}

// AppendSigned appends the "port group tag" text that is the HMAC key.
func (k *Knock) AppendSigned(b []byte) []byte {
	b = strconv.AppendUint(b, uint64(k.Port), 10)
	b = append(b, ' ')
	b = append(b, k.Group()...)
	b = append(b, ' ')
	return appendTag(b, k.Tag)
}

// AppendPayload appends the knock's UDP payload: the four fields joined by
// single spaces, lower-case hex MAC, no terminator (CLASSIC-2.1).
func (k *Knock) AppendPayload(b []byte) []byte {
	b = k.AppendSigned(b)
	b = append(b, ' ')
	return hex.AppendEncode(b, k.MAC[:])
}

// String returns the payload as text.
func (k *Knock) String() string {
	var buf [MaxClassicLen]byte
	return string(k.AppendPayload(buf[:0]))
}

// Sign computes the knock's MAC under secret: HMAC-MD5 keyed with the
// "port group tag" text over the secret (CLASSIC-3.1).
func (k *Knock) Sign(secret []byte) [MACSize]byte {
	var buf [MaxSignedLen]byte
	return classicMAC(k.AppendSigned(buf[:0]), secret)
}

// VerifyMAC reports in constant time whether the knock's MAC is the one
// secret gives (CLASSIC-4.6). An empty secret verifies nothing: guest-list
// secrets are never empty (CLASSIC-9.3), and a modern guest has none.
func (k *Knock) VerifyMAC(secret []byte) bool {
	if len(secret) == 0 {
		return false
	}
	want := k.Sign(secret)
	return macEqual(&want, &k.MAC)
}

func appendTag(b []byte, tag uint32) []byte {
	var d [TagLen]byte
	for i := TagLen - 1; i >= 0; i-- {
		d[i] = byte('0' + tag%10)
		tag /= 10
	}
	return append(b, d[:]...)
}

// ParseKnock parses a classic knock payload strictly (CLASSIC-2) into k.
// It returns one of the package's *FieldError sentinels for a payload that
// is not well formed, naming the field at fault; it never allocates.
func ParseKnock(payload []byte, k *Knock) error {
	// One final newline is tolerated, as 0.81 strips it (CLASSIC-2.4).
	if n := len(payload); n > 0 && payload[n-1] == '\n' {
		payload = payload[:n-1]
	}
	if len(payload) < MinClassicLen || len(payload) > MaxClassicLen {
		return ErrLength
	}
	if Sniff(payload) != KindClassic {
		return ErrNotClassic
	}
	// The MAC is the fixed-size tail; the tag the fixed-size field before it.
	n := len(payload)
	mac := payload[n-MACHexLen:]
	if payload[n-MACHexLen-1] != ' ' || payload[n-MACHexLen-TagLen-2] != ' ' {
		return ErrFieldCount
	}
	tag := payload[n-MACHexLen-1-TagLen : n-MACHexLen-1]
	head := payload[:n-MACHexLen-TagLen-2] // "port group"
	sp := -1
	for i, c := range head {
		if c == ' ' {
			sp = i
			break
		}
	}
	if sp < 0 {
		return ErrFieldCount
	}
	port, group := head[:sp], head[sp+1:]

	if len(port) == 0 || len(port) > MaxPortLen || port[0] == '0' {
		if len(port) == 0 || port[0] == ' ' {
			return ErrFieldCount
		}
		return ErrPortSyntax
	}
	var p uint32
	for _, c := range port {
		if c < '0' || c > '9' {
			return ErrPortSyntax
		}
		p = p*10 + uint32(c-'0')
	}
	if p > 65535 {
		return ErrPortRange
	}

	if len(group) == 0 {
		return ErrFieldCount
	}
	if len(group) > MaxGroupLen {
		return ErrGroupLength
	}
	for _, c := range group {
		if c == ' ' {
			return ErrFieldCount
		}
	}
	if !validGroup(group) {
		return ErrGroupSyntax
	}

	var t uint64
	for _, c := range tag {
		if c < '0' || c > '9' {
			if c == ' ' {
				return ErrFieldCount
			}
			return ErrTagSyntax
		}
		t = t*10 + uint64(c-'0')
	}
	if t > 1<<32-1 {
		return ErrTagRange
	}

	var m [MACSize]byte
	for i := 0; i < MACSize; i++ {
		hi, ok1 := unhex(mac[2*i])
		lo, ok2 := unhex(mac[2*i+1])
		if !ok1 || !ok2 {
			if mac[2*i] == ' ' || mac[2*i+1] == ' ' {
				return ErrFieldCount
			}
			return ErrMACSyntax
		}
		m[i] = hi<<4 | lo
	}

	k.Port = uint16(p)
	k.Tag = uint32(t)
	k.MAC = m
	k.groupLen = uint8(copy(k.group[:], group))
	clear(k.group[k.groupLen:])
	return nil
}

// unhex accepts either case: 0.81 daemons do, and some clients print upper
// case (CLASSIC-2.5).
func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// GroupAlphabet lists the characters other than ASCII letters and digits
// that a group name (and a guest-list secret) may contain (CLASSIC-9.3).
const GroupAlphabet = `!@$%^&*()_-+=|\[]{};:'"<>,?/`

// ValidName reports whether s is a well-formed guest-list name or secret
// token: only letters, digits and GroupAlphabet characters.
func ValidName(s string) bool { return validGroup([]byte(s)) }

func validGroup(b []byte) bool {
	for _, c := range b {
		if !nameByte(c) {
			return false
		}
	}
	return true
}

func nameByte(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '@', '$', '%', '^', '&', '*', '(', ')', '_', '-', '+', '=', '|', '\\', '[', ']', '{', '}', ';', ':', '\'', '"', '<', '>', ',', '?', '/':
		return true
	}
	return false
}
