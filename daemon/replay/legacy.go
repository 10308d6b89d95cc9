package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// LegacyRecord is one used slot of a Doorman 0.81 hash archive.
type LegacyRecord struct {
	MAC [protocol.MACSize]byte
	At  time.Time
}

// ParseLegacy reads a 0.81 hash archive: a table of records of a 16-byte
// digest and a native-endian time_t, 24 bytes each on 64-bit builds and 20
// on 32-bit ones (the files are not portable between the two, so the width
// is inferred from the size and, when both fit, from which reading gives
// plausible times). Empty slots (all zero) are skipped.
func ParseLegacy(data []byte, now time.Time) ([]LegacyRecord, error) {
	w, err := legacyWidth(data, now)
	if err != nil {
		return nil, err
	}
	var recs []LegacyRecord
	eachLegacy(data, w, func(r LegacyRecord) { recs = append(recs, r) })
	return recs, nil
}

// legacyWidth returns the record width data reads as, validating every slot.
func legacyWidth(data []byte, now time.Time) (int, error) {
	var lastErr error
	for _, w := range []int{24, 20} {
		if len(data) == 0 || len(data)%w != 0 {
			continue
		}
		if lastErr = checkLegacy(data, w, now); lastErr == nil {
			return w, nil
		}
	}
	if lastErr == nil {
		return 0, errors.New("not a 0.81 hash archive: size is not a multiple of 20 or 24 bytes")
	}
	return 0, fmt.Errorf("not a 0.81 hash archive: %w", lastErr)
}

func legacySlot(slot []byte) (mac [protocol.MACSize]byte, sec int64) {
	copy(mac[:], slot[:16])
	if len(slot) == 24 {
		return mac, int64(binary.LittleEndian.Uint64(slot[16:]))
	}
	return mac, int64(binary.LittleEndian.Uint32(slot[16:]))
}

func checkLegacy(data []byte, w int, now time.Time) error {
	limit := now.Add(24 * time.Hour).Unix()
	for off := 0; off < len(data); off += w {
		mac, sec := legacySlot(data[off : off+w])
		if mac == ([protocol.MACSize]byte{}) {
			if sec != 0 {
				return fmt.Errorf("%d-byte records: empty digest with a time at byte %d", w, off)
			}
			continue
		}
		if sec <= 0 || sec > limit {
			return fmt.Errorf("%d-byte records: implausible time %d at byte %d", w, sec, off)
		}
	}
	return nil
}

// eachLegacy calls fn with every used slot of data, which legacyWidth
// validated as records of w bytes.
func eachLegacy(data []byte, w int, fn func(LegacyRecord)) {
	for off := 0; off+w <= len(data); off += w {
		mac, sec := legacySlot(data[off : off+w])
		if mac != ([protocol.MACSize]byte{}) {
			fn(LegacyRecord{MAC: mac, At: time.Unix(sec, 0)})
		}
	}
}

// legacyCount returns how many used slots eachLegacy will hand over.
func legacyCount(data []byte, w int) int {
	n := 0
	eachLegacy(data, w, func(LegacyRecord) { n++ })
	return n
}
