package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
	"pgregory.net/rapid"
)

// faultyFile injects the failures a full or failing disk causes.
type faultyFile struct {
	*os.File
	partial  int   // >= 0: the next write writes this many bytes, then fails with ENOSPC
	truncErr error // Truncate fails with this
	syncErr  error // Sync fails with this
}

func (f *faultyFile) Write(p []byte) (int, error) {
	if f.partial < 0 {
		return f.File.Write(p)
	}
	n, _ := f.File.Write(p[:min(f.partial, len(p))])
	f.partial = -1
	return n, syscall.ENOSPC
}

func (f *faultyFile) Truncate(size int64) error {
	if f.truncErr != nil {
		return f.truncErr
	}
	return f.File.Truncate(size)
}

func (f *faultyFile) Sync() error {
	if f.syncErr != nil {
		return f.syncErr
	}
	return f.File.Sync()
}

func faulty(o Options) (Options, *faultyFile) {
	ff := &faultyFile{partial: -1}
	o.wrap = func(f *os.File) file { ff.File = f; return ff }
	return o, ff
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestShortWriteRestored: a record cut short by ENOSPC is refused and
// removed at once (ftruncate to the last good length), so the next record
// lands aligned and the store goes on (CLASSIC-5.5/3).
func TestShortWriteRestored(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	o, ff := faulty(Options{})
	s := mustOpen(t, path, o)
	for i := range 3 {
		admit(t, s, macN(i))
	}
	ff.partial = 10
	_, err := s.Admit(macN(3), fpA)
	if !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Admit on a full disk: %v, want ErrWrite wrapping ENOSPC", err)
	}
	if got := size(t, path); got != 32+3*32 {
		t.Fatalf("file is %d bytes after the failed write, want %d", got, 32+3*32)
	}
	if _, ok := s.Seen(macN(3)); ok {
		t.Fatal("a refused knock's digest is remembered as accepted")
	}
	admit(t, s, macN(3)) // space is back: the same knock sent again
	admit(t, s, macN(4))
	if err := s.Err(); err != nil {
		t.Fatalf("store broken after a restored write: %v", err)
	}
	s.Close()
	s = mustOpen(t, path, Options{})
	defer s.Close()
	for i := range 5 {
		wantReplay(t, s, macN(i))
	}
}

// TestRestoreFailsClosed: if the torn record cannot be cut off either, the
// store refuses every knock until restart, and the restart drops the torn
// tail and keeps everything admitted (CLASSIC-5.5/3).
func TestRestoreFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	o, ff := faulty(Options{})
	s := mustOpen(t, path, o)
	admit(t, s, macN(0))
	ff.partial, ff.truncErr = 10, syscall.EIO
	if _, err := s.Admit(macN(1), fpA); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Admit when the torn record cannot be removed: %v, want ErrStoreFailed", err)
	}
	ff.truncErr = nil
	for i := 2; i < 4; i++ {
		if _, err := s.Admit(macN(i), fpA); !errors.Is(err, ErrStoreFailed) {
			t.Fatalf("later Admit: %v, want ErrStoreFailed", err)
		}
	}
	if err := s.Err(); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Err() = %v, want ErrStoreFailed", err)
	}
	wantReplay(t, s, macN(0))
	s.Close()
	s = mustOpen(t, path, Options{})
	defer s.Close()
	wantReplay(t, s, macN(0))
	if s.Len() != 1 || size(t, path) != 64 {
		t.Fatalf("after restart: %d digests, %d bytes; want 1 digest, the torn tail dropped", s.Len(), size(t, path))
	}
}

// TestSyncFailureFailsClosed: after a failed fsync the kernel may have
// dropped written records, so the store stops admitting (CLASSIC-5.5/3).
func TestSyncFailureFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	o, ff := faulty(Options{Sync: -1})
	s := mustOpen(t, path, o)
	defer s.Close()
	admit(t, s, macN(0))
	ff.syncErr = syscall.EIO
	if _, err := s.Admit(macN(1), fpA); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Admit with a failing fsync: %v, want ErrStoreFailed", err)
	}
	ff.syncErr = nil
	if _, err := s.Admit(macN(2), fpA); !errors.Is(err, ErrStoreFailed) {
		t.Fatalf("Admit after a failed fsync: %v, want ErrStoreFailed", err)
	}
}

// TestSyncTickNoticesVanish: the sync routine notices a deleted store
// without waiting for a knock, and puts the file back (CLASSIC-5.7/2,
// 5.7/3).
func TestSyncTickNoticesVanish(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{Sync: 5 * time.Millisecond})
	defer s.Close()
	admit(t, s, macN(0))
	os.Remove(path)
	deadline := time.Now().Add(10 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if err := s.Err(); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("Err() = %v, want ErrStoreChanged", err)
	}
	if size(t, path) != 64 {
		t.Fatal("vanished store not put back")
	}
}

// TestLockHolderNamed: the lock error names the process holding it
// (CLASSIC-5.7/1).
func TestLockHolderNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	for _, open := range []func() error{
		func() error { _, err := Open(path, Options{}); return err },
		func() error { _, err := Repair(path, Options{}); return err },
		func() error { _, err := OpenStamps(path, Options{}); return err },
	} {
		var le *LockedError
		if err := open(); !errors.As(err, &le) || le.PID != os.Getpid() {
			t.Fatalf("second open: %v; want a LockedError naming pid %d", err, os.Getpid())
		}
	}
}

// TestRepairKeepsEveryRecordThatChecks: a store damaged in three ways
// (a flipped byte, inserted bytes that shift everything after them, a torn
// tail) is refused by Open and repaired by Repair, which keeps every record
// that checks and the original beside it (CLASSIC-5.5/4).
func TestRepairKeepsEveryRecordThatChecks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	for i := range 20 {
		admit(t, s, macN(i))
	}
	s.Close()
	b, _ := os.ReadFile(path)
	b[32+5*32+20] ^= 0x40                                                            // record 5
	b = append(b[:32+11*32:32+11*32], append([]byte("garbage"), b[32+11*32:]...)...) // before record 11
	b = append(b, v1Record(macN(99), 1)[:13]...)                                     // torn tail
	os.WriteFile(path, b, 0o600)

	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	rep, err := Repair(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 19 || rep.Backup != path+".damaged" || rep.DamagedBytes != 32+7+13 {
		t.Fatalf("Repair = %+v; want 19 records kept, 52 bytes dropped, the original kept", rep)
	}
	if orig, _ := os.ReadFile(rep.Backup); !bytes.Equal(orig, b) {
		t.Fatal("original not kept as it was")
	}
	s = mustOpen(t, path, Options{})
	defer s.Close()
	for i := range 20 {
		if i != 5 {
			wantReplay(t, s, macN(i))
		}
	}
	if s.Len() != 19 {
		t.Fatalf("%d digests after repair, want 19", s.Len())
	}
}

// TestRepairIntactIsNoop: repairing a sound store changes nothing.
func TestRepairIntactIsNoop(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	admit(t, s, macN(1))
	s.Close()
	before, _ := os.ReadFile(path)
	rep, err := Repair(path, Options{})
	if err != nil || rep.Records != 1 || rep.DamagedBytes != 0 || rep.Backup != "" {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("sound store rewritten")
	}
}

// TestV1Converted: a sound format-1 store converts without a backup and
// keeps every digest with its time (CLASSIC-5.5/1).
func TestV1Converted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	os.WriteFile(path, v1Image(macN(1), macN(2), macN(3)), 0o600)
	s := mustOpen(t, path, Options{})
	defer s.Close()
	at, err := s.Admit(macN(2), fpA)
	if !errors.Is(err, protocol.ErrReplay) || at.Unix() != 1_700_000_001 {
		t.Fatalf("converted digest: %v, %v", at, err)
	}
	if _, err := os.Lstat(path + ".v1"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("backup kept for a sound conversion: %v", err)
	}
	if size(t, path) != 32+3*32 {
		t.Fatalf("converted store is %d bytes", size(t, path))
	}
}

// TestPropertyScanFindsEveryRecord: whatever bytes are inserted between
// records, flipped inside them or left torn at the end, scan finds every
// record left intact (the repair's promise, CLASSIC-5.5/4).
func TestPropertyScanFindsEveryRecord(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		img := make([]byte, 32)
		var intact []int64
		for i := range rapid.IntRange(0, 40).Draw(t, "records") {
			img = append(img, rapid.SliceOfN(rapid.Byte(), 0, 70).Draw(t, "garbage")...)
			var rec [recordSize]byte
			encode(&rec, macN(i), time.Unix(int64(i), 0), fpA)
			if rapid.IntRange(0, 4).Draw(t, "damage") == 0 {
				rec[rapid.IntRange(0, 31).Draw(t, "byte")] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
			} else {
				intact = append(intact, int64(len(img)))
			}
			img = append(img, rec[:]...)
		}
		img = append(img, rapid.SliceOfN(rapid.Byte(), 0, 40).Draw(t, "tail")...)
		found := map[int64]bool{}
		res, err := scan(bytes.NewReader(img), 32, int64(len(img)), recordSize, func(off int64, rec []byte) error {
			if !sealed(rec) || !bytes.Equal(rec, img[off:off+recordSize]) {
				t.Fatalf("record at %d handed over wrong", off)
			}
			found[off] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, off := range intact {
			if !found[off] {
				t.Fatalf("intact record at byte %d not found", off)
			}
		}
		if len(intact) > 0 && res.end < intact[len(intact)-1]+recordSize {
			t.Fatalf("end %d before the last intact record", res.end)
		}
	})
}

// FuzzLoad feeds arbitrary bytes to the loaders as a file's contents:
// format 2 and format 1 replay stores, stamp files and 0.81 archives. No
// input panics; every record handed over checks and is the file's bytes;
// the damage reported and the records found account for every byte up to
// the last record; and the file rewritten from the records found, as a
// conversion or repair writes it, loads to the same records with no damage
// and no tail. (TestPropertyOpenRepair runs the same on real files.)
func FuzzLoad(f *testing.F) {
	var rec [recordSize]byte
	encode(&rec, macN(1), time.Unix(1_700_000_000, 0), fpA)
	v2 := append(replayFormat.header(), rec[:]...)
	f.Add(v2)
	f.Add(append(bytes.Clone(v2), 1, 2, 3))
	f.Add(append(append(bytes.Clone(v2), 7, 7, 7), rec[:]...))
	f.Add(v1Image(macN(1), macN(2)))
	f.Add(legacyArchive(24, map[byte]int64{1: 1_100_000_000}, 10))
	st := encodeStamp([32]byte{1}, 7)
	f.Add(append(stampsFormat.header(), st[:]...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, img []byte) {
		for _, k := range []format{replayFormat, stampsFormat} {
			h := img[:min(len(img), k.recSize)]
			start := int64(k.recSize)
			switch k.classify(h, int64(len(img))) {
			case contentFresh, contentOther:
				continue
			case contentV1:
				start = int64(len(v1Header))
			}
			if start > int64(len(img)) { // a header cut short
				res, err := scan(bytes.NewReader(img), start, int64(len(img)), k.recSize, nil)
				if err != nil || res.records != 0 || res.end != int64(len(img)) {
					t.Fatalf("%s: short file scans to %+v, %v", k.name, res, err)
				}
				continue
			}
			checkRescan(t, k, img, start)
		}
		if _, err := ParseLegacy(img, time.Unix(1_800_000_000, 0)); err == nil && len(img)%20 != 0 && len(img)%24 != 0 {
			t.Fatalf("%d-byte file read as a 0.81 archive", len(img))
		}
	})
}

// checkRescan scans img from start and checks the result and its rewrite.
func checkRescan(t *testing.T, k format, img []byte, start int64) {
	kept := k.header()
	covered, prevEnd, last := int64(0), start, int64(-1)
	res, err := scan(bytes.NewReader(img), start, int64(len(img)), k.recSize, func(off int64, rec []byte) error {
		if !sealed(rec) || !bytes.Equal(rec, img[off:off+int64(k.recSize)]) || off <= last {
			t.Fatalf("%s: record at %d handed over wrong or out of order", k.name, off)
		}
		covered += off + int64(k.recSize) - max(prevEnd, off)
		last, prevEnd = off, off+int64(k.recSize)
		kept = append(kept, rec...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.end > int64(len(img)) || res.end < start || covered+res.bytes != res.end-start {
		t.Fatalf("%s: end %d, %d bytes in records, %d damaged, from %d", k.name, res.end, covered, res.bytes, start)
	}
	again, err := scan(bytes.NewReader(kept), int64(k.recSize), int64(len(kept)), k.recSize, func(int64, []byte) error { return nil })
	if err != nil || again.records != res.records || again.places != 0 || again.end != int64(len(kept)) {
		t.Fatalf("%s: rewritten file scans to %+v, want %d records and nothing else", k.name, again, res.records)
	}
}

// TestPropertyOpenRepair runs damaged store files through Open and Repair:
// Open loads a file whose only damage is a torn tail and refuses any other
// damage with ErrCorrupt; Repair always yields a file that Open loads, with
// every record that was intact; reopening agrees (CLASSIC-5.5/4).
func TestPropertyOpenRepair(t *testing.T) {
	dir := t.TempDir()
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		n++
		path := filepath.Join(dir, fmt.Sprintf("replay%d", n))
		img := replayFormat.header()
		var intact [][protocol.MACSize]byte
		middle := false
		for i := range rapid.IntRange(0, 20).Draw(t, "records") {
			var rec [recordSize]byte
			encode(&rec, macN(i), time.Unix(1_700_000_000, 0), fpA)
			switch rapid.IntRange(0, 9).Draw(t, "damage") {
			case 0:
				rec[rapid.IntRange(0, 31).Draw(t, "byte")] ^= 0x10
				middle = true
			case 1:
				img = append(img, rapid.SliceOfN(rapid.Byte(), 1, 40).Draw(t, "inserted")...)
				intact = append(intact, macN(i))
				middle = true
			default:
				intact = append(intact, macN(i))
			}
			img = append(img, rec[:]...)
		}
		tail := rapid.SliceOfN(rapid.Byte(), 0, 31).Draw(t, "tail")
		img = append(img, tail...)
		if err := os.WriteFile(path, img, 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := Open(path, Options{})
		if err == nil {
			n := s.Len()
			s.Close()
			if s, err = Open(path, Options{}); err != nil || s.Len() != n {
				t.Fatalf("reopen: %v", err)
			}
			s.Close()
		}
		// A bad record that is the last thing in the file is a torn tail,
		// so damage in the middle may still open; none must.
		if err != nil && (!errors.Is(err, ErrCorrupt) || !middle) {
			t.Fatalf("Open: %v", err)
		}
		if _, err := Repair(path, Options{}); err != nil {
			t.Fatalf("Repair: %v", err)
		}
		s, err = Open(path, Options{})
		if err != nil {
			t.Fatalf("Open after Repair: %v", err)
		}
		defer s.Close()
		for _, m := range intact {
			if _, ok := s.Seen(m); !ok {
				t.Fatalf("intact record %x lost (damage in the middle: %v)", m[:4], middle)
			}
		}
	})
}

// TestMovedAwayNoticedByTick: a store moved away while still linked is
// noticed by the sync routine, which puts a copy back at the path with
// every record, also those written in the meantime (CLASSIC-5.7/2, CLASSIC-5.7/3).
func TestMovedAwayNoticedByTick(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{Sync: 5 * time.Millisecond})
	admit(t, s, macN(0))
	if err := os.Rename(path, path+".aside"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Err() == nil && time.Now().Before(deadline) {
		s.Admit(macN(1), fpA) // may land in the moved file before the tick
		time.Sleep(time.Millisecond)
	}
	if err := s.Err(); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("Err() = %v, want ErrStoreChanged", err)
	}
	_, admitted := s.Seen(macN(1))
	s.Close()
	s = mustOpen(t, path, Options{})
	defer s.Close()
	wantReplay(t, s, macN(0))
	if admitted {
		wantReplay(t, s, macN(1))
	}
}

// forgeCRC sets msg[at:at+4] so that the CRC-32C of msg is want: CRC is
// affine over GF(2), so the 32 bits form a solvable linear system.
func forgeCRC(t *testing.T, msg []byte, at int, want uint32) {
	t.Helper()
	clear(msg[at : at+4])
	base := crc32.Checksum(msg, crcTable)
	var cols [32]uint32 // effect of each free bit on the CRC
	for i := range 32 {
		msg[at+i/8] ^= 1 << (i % 8)
		cols[i] = crc32.Checksum(msg, crcTable) ^ base
		msg[at+i/8] ^= 1 << (i % 8)
	}
	// Gaussian elimination: rows[r] = (combination of bits, its effect).
	type row struct{ bits, effect uint32 }
	var rows []row
	for i, c := range cols {
		r := row{1 << i, c}
		for _, p := range rows {
			if r.effect^p.effect < r.effect {
				r.effect ^= p.effect
				r.bits ^= p.bits
			}
		}
		if r.effect != 0 {
			rows = append(rows, r)
		}
	}
	target, bits := want^base, uint32(0)
	for _, p := range rows {
		if target^p.effect < target {
			target ^= p.effect
			bits ^= p.bits
		}
	}
	if target != 0 {
		t.Fatal("CRC not forgeable here")
	}
	binary.LittleEndian.PutUint32(msg[at:], bits)
	if crc32.Checksum(msg, crcTable) != want {
		t.Fatal("forgery failed")
	}
}

// TestScanSurvivesChanceMatch: garbage that happens to check as a record
// (forged here; by chance one window in 2^32) and overlaps the start of a
// real record does not make scan skip that record.
func TestScanSurvivesChanceMatch(t *testing.T) {
	rec := func(i int) []byte {
		var r [recordSize]byte
		encode(&r, macN(i), time.Unix(1, 0), fpA)
		return r[:]
	}
	img := append(replayFormat.header(), rec(0)...)
	garbage := []byte("GARBAGE!")
	img = append(img, garbage...)
	img = append(img, rec(1)...)
	img = append(img, rec(2)...)
	// The window at the garbage: 8 garbage bytes and the first 24 of
	// record 1, whose bytes 20-24 are the window's checksum field.
	w := 64
	msg := bytes.Clone(img[w : w+28])
	forgeCRC(t, msg, 0, binary.BigEndian.Uint32(img[w+28:w+32]))
	copy(img[w:], msg[:8])
	if !sealed(img[w : w+recordSize]) {
		t.Fatal("no chance match built")
	}
	var found []int64
	if _, err := scan(bytes.NewReader(img), 32, int64(len(img)), recordSize, func(off int64, _ []byte) error {
		found = append(found, off)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []int64{32, 64, 72, 104} // record 0, the chance match, records 1 and 2
	if fmt.Sprint(found) != fmt.Sprint(want) {
		t.Fatalf("records found at %v, want %v", found, want)
	}
}
