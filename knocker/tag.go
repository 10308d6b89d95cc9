package knocker

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
)

// NewTag returns a fresh 32-bit knock tag from the operating system's CSPRNG.
// The tag is what makes two knocks for the same port, group and secret carry
// different MACs, so it must be unpredictable and fresh for every knock
// (CLASSIC-3.3/1, CLASSIC-3.3/2); 0.81 used srand(time), which repeats
// within a second.
func NewTag() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, fmt.Errorf("knock tag: %w", err)
	}
	return binary.BigEndian.Uint32(b[:]), nil
}
