package protocol

import (
	"crypto/md5"
	"crypto/subtle"
)

// MACSize is the size of a classic knock's HMAC-MD5 digest in bytes.
const MACSize = md5.Size

// inlineSecret is the longest secret whose inner hash is computed in a stack
// buffer; longer secrets take a (rare) allocating path.
const inlineSecret = 192

// classicMAC computes HMAC-MD5(key, msg) per RFC 2104 without allocating for
// keys and messages of the sizes classic knocks use. Callers pass the knock's
// first three fields as key and the secret as msg (CLASSIC-3.1): the original
// implementation swapped the conventional roles, and the wire depends on it.
func classicMAC(key, msg []byte) [MACSize]byte {
	var k0 [md5.BlockSize]byte
	if len(key) > md5.BlockSize {
		sum := md5.Sum(key)
		copy(k0[:], sum[:])
	} else {
		copy(k0[:], key)
	}

	var inner [MACSize]byte
	if len(msg) <= inlineSecret {
		var buf [md5.BlockSize + inlineSecret]byte
		for i, b := range k0 {
			buf[i] = b ^ 0x36
		}
		n := copy(buf[md5.BlockSize:], msg)
		inner = md5.Sum(buf[:md5.BlockSize+n])
		clear(buf[:])
	} else {
		var pad [md5.BlockSize]byte
		for i, b := range k0 {
			pad[i] = b ^ 0x36
		}
		h := md5.New()
		h.Write(pad[:])
		h.Write(msg)
		h.Sum(inner[:0])
	}

	var outer [md5.BlockSize + MACSize]byte
	for i, b := range k0 {
		outer[i] = b ^ 0x5c
	}
	copy(outer[md5.BlockSize:], inner[:])
	clear(k0[:])
	return md5.Sum(outer[:])
}

// macEqual compares two digests in constant time (CLASSIC-4.6).
func macEqual(a, b *[MACSize]byte) bool {
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
