package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
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
	var widths []int
	for _, w := range []int{24, 20} {
		if len(data) > 0 && len(data)%w == 0 {
			widths = append(widths, w)
		}
	}
	if len(widths) == 0 {
		return nil, errors.New("not a 0.81 hash archive: size is not a multiple of 20 or 24 bytes")
	}
	var lastErr error
	for _, w := range widths {
		recs, err := parseLegacyWidth(data, w, now)
		if err == nil {
			return recs, nil
		}
		lastErr = err
	}
	return nil, fmt.Errorf("not a 0.81 hash archive: %w", lastErr)
}

func parseLegacyWidth(data []byte, w int, now time.Time) ([]LegacyRecord, error) {
	var recs []LegacyRecord
	limit := now.Add(24 * time.Hour).Unix()
	for off := 0; off < len(data); off += w {
		slot := data[off : off+w]
		var sec int64
		if w == 24 {
			sec = int64(binary.LittleEndian.Uint64(slot[16:]))
		} else {
			sec = int64(binary.LittleEndian.Uint32(slot[16:]))
		}
		var mac [protocol.MACSize]byte
		copy(mac[:], slot[:16])
		if mac == ([protocol.MACSize]byte{}) {
			if sec != 0 {
				return nil, fmt.Errorf("%d-byte records: empty digest with a time at byte %d", w, off)
			}
			continue
		}
		if sec <= 0 || sec > limit {
			return nil, fmt.Errorf("%d-byte records: implausible time %d at byte %d", w, sec, off)
		}
		recs = append(recs, LegacyRecord{MAC: mac, At: time.Unix(sec, 0)})
	}
	return recs, nil
}

// convertLegacy replaces a 0.81 archive at s.path by a store holding its
// digests, keeping the original as s.path+".0.81".
func (s *Store) convertLegacy(data []byte) error {
	recs, err := ParseLegacy(data, s.now())
	if err != nil {
		return fmt.Errorf("replay store %s: neither a doorman replay store nor a 0.81 hash archive (%v); "+
			"point hash-archive at a new file", s.path, err)
	}
	if err := writeStore(s.path+".new", recs, nil); err != nil {
		return err
	}
	if err := os.Rename(s.path, s.path+".0.81"); err != nil {
		return fmt.Errorf("replay store %s: keep 0.81 archive: %w", s.path, err)
	}
	if err := os.Rename(s.path+".new", s.path); err != nil {
		return fmt.Errorf("replay store %s: %w", s.path, err)
	}
	s.log.Info("imported 0.81 hash archive", "path", s.path, "digests", len(recs), "original", s.path+".0.81")
	return nil
}

func (s *Store) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// writeStore writes a complete store file atomically enough for offline
// use: to a new file, synced.
func writeStore(path string, recs []LegacyRecord, fps [][4]byte) error {
	buf := make([]byte, 0, headerSize+recordSize*len(recs))
	buf = append(buf, header...)
	for i, r := range recs {
		var rec [recordSize]byte
		var fp Fingerprint
		if fps != nil {
			fp = fps[i]
		}
		encode(&rec, r.MAC, r.At, fp)
		buf = append(buf, rec[:]...)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("replay store %s: %w", path, err)
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("replay store %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("replay store %s: %w", path, err)
	}
	return f.Close()
}

// Import adds the digests of a 0.81 hash archive file to the store (for
// `doormand --import-archive`), ignoring capacity, and returns how many were
// new.
func (s *Store) Import(legacyPath string) (int, error) {
	data, err := os.ReadFile(legacyPath)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", legacyPath, err)
	}
	recs, err := ParseLegacy(data, s.now())
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", legacyPath, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range recs {
		if _, ok := s.set.Seen(r.MAC); ok {
			continue
		}
		var rec [recordSize]byte
		encode(&rec, r.MAC, r.At, Fingerprint{})
		if _, err := s.f.Write(rec[:]); err != nil {
			return n, fmt.Errorf("import %s: %w", legacyPath, err)
		}
		s.set.Insert(r.MAC, r.At)
		s.fps[r.MAC] = Fingerprint{}
		n++
	}
	s.dirty = true
	return n, nil
}

// Prune rewrites the store without the digests of knocks that can no longer
// verify: those recorded with a guest fingerprint that keep rejects. Digests
// imported from 0.81 carry no fingerprint and are kept. It returns how many
// were removed. Run it with the daemon stopped.
func Prune(path string, keep func(Fingerprint) bool, opts Options) (int, error) {
	s, err := Open(path, opts)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	var recs []LegacyRecord
	var fps [][4]byte
	removed := 0
	for mac, fp := range s.fps {
		if fp != (Fingerprint{}) && !keep(fp) {
			removed++
			continue
		}
		at, _ := s.set.Seen(mac)
		recs = append(recs, LegacyRecord{MAC: mac, At: at})
		fps = append(fps, fp)
	}
	s.mu.Unlock()
	if err := s.Close(); err != nil {
		return 0, err
	}
	if removed == 0 {
		return 0, nil
	}
	if err := writeStore(path+".new", recs, fps); err != nil {
		return 0, err
	}
	if err := os.Rename(path+".new", path); err != nil {
		return 0, fmt.Errorf("replay store %s: %w", path, err)
	}
	return removed, nil
}
