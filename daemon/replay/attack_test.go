package replay

// Tests for the security audit "Keep the promises under attack", items 4
// (a full disk tears the store), 6 (no O_APPEND, no lock, no vanish
// detection) and 7 (symlinks followed in writable directories).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

// v1Image builds a store file as versions before format 2 wrote it: a
// 16-byte header, then 32-byte records, so record 127 straddles the first
// 4 KiB block boundary (bytes 4080-4111).
func v1Image(macs ...[protocol.MACSize]byte) []byte {
	b := []byte("DOORMAN-REPLAY\x00\x01")
	for i, m := range macs {
		b = append(b, v1Record(m, int64(1_700_000_000+i)*1e9)...)
	}
	return b
}

func v1Record(m [protocol.MACSize]byte, ns int64) []byte {
	var r [32]byte
	copy(r[:], m[:])
	binary.BigEndian.PutUint64(r[16:], uint64(ns))
	copy(r[24:], fpA[:])
	binary.BigEndian.PutUint32(r[28:], crc32.Checksum(r[:28], crc32.MakeTable(crc32.Castagnoli)))
	return r[:]
}

// macN is the n-th of many distinct digests.
func macN(n int) [protocol.MACSize]byte {
	var m [protocol.MACSize]byte
	binary.BigEndian.PutUint64(m[:], uint64(n)*0x9E3779B97F4A7C15)
	binary.BigEndian.PutUint64(m[8:], uint64(n)+1)
	return m
}

func admit(t *testing.T, s *Store, m [protocol.MACSize]byte) {
	t.Helper()
	if _, err := s.Admit(m, fpA); err != nil {
		t.Fatalf("admit %x: %v", m[:4], err)
	}
}

func wantReplay(t *testing.T, s *Store, m [protocol.MACSize]byte) {
	t.Helper()
	if _, err := s.Admit(m, fpA); !errors.Is(err, protocol.ErrReplay) {
		t.Fatalf("digest %x admitted again or refused for another reason: %v; want ErrReplay", m[:4], err)
	}
}

// TestRecordsAlignedToBlocks: the header is padded to the record size, so
// no record straddles a 4 KiB block and a full disk cannot leave half of one
// behind (audit item 4, CLASSIC-5.5/3).
func TestRecordsAlignedToBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	for i := range 130 {
		admit(t, s, macN(i))
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 32+130*32 {
		t.Fatalf("store of 130 records is %d bytes, want %d: header and records must be 32-byte aligned", fi.Size(), 32+130*32)
	}
}

// TestV1TornAtBlockBoundary is the audit's file: a format-1 store whose
// record at byte 4080 was cut short by ENOSPC, followed by records written
// once space returned. Opening it converts it to format 2 keeping every
// record that checks; the torn record's knock had been refused
// (CLASSIC-5.5/4).
func TestV1TornAtBlockBoundary(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	var macs [][protocol.MACSize]byte
	for i := range 127 {
		macs = append(macs, macN(i))
	}
	img := v1Image(macs...)
	img = append(img, v1Record(macN(999), 1)[:16]...) // torn by ENOSPC at 4096
	for i := 127; i < 140; i++ {
		img = append(img, v1Record(macN(i), 2)...)
		macs = append(macs, macN(i))
	}
	if err := os.WriteFile(path, img, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("format-1 store torn at byte 4080 does not open: %v", err)
	}
	defer s.Close()
	for _, m := range macs {
		wantReplay(t, s, m)
	}
	if s.Len() != len(macs) {
		t.Fatalf("store holds %d digests, want %d", s.Len(), len(macs))
	}
	b, _ := os.ReadFile(path)
	if !strings.HasPrefix(string(b), "DOORMAN-REPLAY\x00\x02") {
		t.Fatalf("store not converted to format 2: header %q", b[:16])
	}
}

// TestDamagedRecordNamesRepair: damage inside the store is never skipped
// silently, and the remedy offered keeps the history (audit item 4: "move
// the file aside" made every old knock replayable).
func TestDamagedRecordNamesRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	for i := range 5 {
		admit(t, s, macN(i))
	}
	s.Close()
	b, _ := os.ReadFile(path)
	b[len(b)-3*32+5] ^= 0xFF // the third record from the end
	os.WriteFile(path, b, 0o600)
	_, err := Open(path, Options{})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of a store damaged in the middle: %v, want ErrCorrupt", err)
	}
	if strings.Contains(err.Error(), "aside") || !strings.Contains(err.Error(), "--repair-replay") {
		t.Fatalf("remedy offered: %q; want doormand --repair-replay, not moving the file aside", err)
	}
}

// TestSecondOpenLocked: the store is locked for its lifetime; a second
// opener (another doormand, --import-archive, --prune-replay) is refused
// with the holder named (audit item 6, CLASSIC-5.7/1).
func TestSecondOpenLocked(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	admit(t, s, macN(1))

	_, err := Open(path, Options{})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
	if !strings.Contains(err.Error(), fmt.Sprint(os.Getpid())) {
		t.Errorf("lock error %q does not name the holder, pid %d", err, os.Getpid())
	}
	if _, err := Prune(path, func(Fingerprint) bool { return false }, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("Prune while the store is open: %v, want ErrLocked", err)
	}
	// The digest is still refused: nothing else rewrote the file.
	wantReplay(t, s, macN(1))
}

// TestImportWhileRunningRefused is the audit's lost digest: --import-archive
// appended through its own descriptor while the daemon kept writing at its
// old offset, overwriting the first imported digest, and reported success.
func TestImportWhileRunningRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	legacy := filepath.Join(dir, "old")
	os.WriteFile(legacy, legacyArchive(24, map[byte]int64{9: 1_100_000_000, 10: 1_100_000_001}, 1000), 0o600)

	daemon := mustOpen(t, path, Options{})
	defer daemon.Close()
	if imp, err := Open(path, Options{}); err == nil {
		n, ierr := imp.Import(legacy)
		imp.Close()
		admit(t, daemon, macN(1)) // the daemon keeps writing
		t.Fatalf("import while the daemon runs: Open succeeded, Import = %d, %v; want ErrLocked", n, ierr)
	} else if !errors.Is(err, ErrLocked) {
		t.Fatalf("import while the daemon runs: %v, want ErrLocked", err)
	}
}

// TestTruncatedUnderStore: a store whose file shrank while running refuses
// every knock (fail closed) instead of writing past a hole (CLASSIC-5.7/2).
func TestTruncatedUnderStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	admit(t, s, macN(1))
	admit(t, s, macN(2))
	if err := os.Truncate(path, 32); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Admit(macN(10+i), fpA); !errors.Is(err, ErrStoreChanged) {
			t.Fatalf("knock %d after the file was truncated: %v, want ErrStoreChanged", i, err)
		}
	}
}

// TestGrownUnderStore: records appended by another writer are unknown to
// the running store, so it refuses knocks until restarted (CLASSIC-5.7/2).
func TestGrownUnderStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	admit(t, s, macN(1))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(make([]byte, 32))
	f.Close()
	if _, err := s.Admit(macN(2), fpA); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("knock after another process appended: %v, want ErrStoreChanged", err)
	}
}

// TestDeletedUnderStore: deleting the store while running is noticed, every
// knock is refused, and the file is put back from the open descriptor so a
// restart does not make old knocks replayable (CLASSIC-5.7/2, CLASSIC-5.7/3).
func TestDeletedUnderStore(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	admit(t, s, macN(1))
	admit(t, s, macN(2))
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admit(macN(3), fpA); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("knock after the store was deleted: %v, want ErrStoreChanged", err)
	}
	if _, err := s.Admit(macN(4), fpA); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("second knock after the store was deleted: %v, want ErrStoreChanged", err)
	}
	s.Close()
	s = mustOpen(t, path, Options{})
	defer s.Close()
	wantReplay(t, s, macN(1))
	wantReplay(t, s, macN(2))
}

// TestReplacedUnderStore: a store whose path now names another file
// refuses knocks and leaves that file alone (CLASSIC-5.7/2).
func TestReplacedUnderStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	s := mustOpen(t, path, Options{})
	defer s.Close()
	admit(t, s, macN(1))
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("someone else's file"), 0o600)
	if err := os.Rename(other, path); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admit(macN(2), fpA); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("knock after the store was replaced: %v, want ErrStoreChanged", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "someone else's file" {
		t.Fatalf("replacement file changed: %q", b)
	}
}

// TestSymlinkStoreRefused: in a directory others can write, a symbolic link
// at the store's path must not make root write through it (audit item 7,
// CLASSIC-5.8).
func TestSymlinkStoreRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	path := filepath.Join(dir, "replay")
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path, Options{}); err == nil {
		s.Admit(macN(1), fpA)
		s.Close()
		t.Fatal("opened a store through a symbolic link")
	} else if !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("error %q does not say the path is a symbolic link", err)
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("link target written: %q", b)
	}
}

// TestSymlinkTempRefused: a link planted at the name of the store's
// temporary file is not written through when the store is rewritten
// (conversion of a format-1 store here; CLASSIC-5.8).
func TestSymlinkTempRefused(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	path := filepath.Join(dir, "replay")
	os.WriteFile(path, v1Image(macN(1), macN(2)), 0o600)
	for _, suffix := range []string{".tmp", ".new", ".v1"} {
		os.Symlink(victim, path+suffix)
	}
	s, err := Open(path, Options{})
	if err == nil {
		wantReplay(t, s, macN(1))
		s.Close()
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("link target written: %q (Open: %v)", b, err)
	}
}

// TestFIFOStoreRefused: a FIFO planted at the store's path is refused
// without blocking the open (CLASSIC-5.8).
func TestFIFOStoreRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		s, err := Open(path, Options{})
		if err == nil {
			s.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Open of a FIFO: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Open blocked on a FIFO")
	}
}
