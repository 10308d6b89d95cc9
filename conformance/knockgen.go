//go:build linux

package conformance

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// classicPayload builds a knock independently of the implementation under
// test: HMAC-MD5 keyed with "port group tag" over the secret (CLASSIC-3.1).
func classicPayload(port int, group string, tag uint32, secret string) string {
	head := fmt.Sprintf("%d %s %010d", port, group, tag)
	return head + " " + macHex(head, secret)
}

func macHex(head, secret string) string {
	m := hmac.New(md5.New, []byte(head))
	m.Write([]byte(secret))
	return hex.EncodeToString(m.Sum(nil))
}

func randomTag() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

// knockFor returns a fresh valid knock for alice.
func knockFor(port int) string { return classicPayload(port, "alice", randomTag(), secretA) }
