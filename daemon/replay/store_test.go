package replay

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

func mac(b byte) [protocol.MACSize]byte {
	var m [protocol.MACSize]byte
	m[0], m[15] = b, 0xAA
	return m
}

var fpA = GuestFingerprint("alice", []byte("s3cret"))

func mustOpen(t *testing.T, path string, o Options) *Store {
	t.Helper()
	s, err := Open(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestPersistsAcrossRestart: a knock accepted before a restart is refused
// after it (CLASSIC-5.5/1), with the second it was first accepted
// (CLASSIC-5.3). The restart reads a copy of the file taken while the store
// was still open, as a kill -9 leaves it (CLASSIC-5.5/2; TestKill9 kills a
// real process).
func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replay")
	at := time.Unix(1_700_000_000, 123)
	s := mustOpen(t, path, Options{Now: func() time.Time { return at }})
	defer s.Close()
	if _, err := s.Admit(mac(1), fpA); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Admit(mac(1), fpA); !errors.Is(err, protocol.ErrReplay) {
		t.Fatalf("second admit: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	crashed := filepath.Join(dir, "crashed")
	os.WriteFile(crashed, b, 0o600)
	s2 := mustOpen(t, crashed, Options{})
	defer s2.Close()
	first, err := s2.Admit(mac(1), fpA)
	if !errors.Is(err, protocol.ErrReplay) || !first.Equal(at.Truncate(time.Second)) {
		t.Fatalf("after restart: %v %v, want replay at %v", first, err, at)
	}
	if _, err := s2.Admit(mac(2), fpA); err != nil {
		t.Fatal(err)
	}
}

// TestTornTail: a partial final record (death inside write) is dropped and
// the rest kept.
func TestTornTail(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	s.Admit(mac(1), fpA)
	s.Close()
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.Write([]byte{1, 2, 3, 4, 5})
	f.Close()
	s = mustOpen(t, path, Options{})
	defer s.Close()
	if _, ok := s.Seen(mac(1)); !ok {
		t.Fatal("record before the torn tail lost")
	}
	if fi, _ := os.Stat(path); fi.Size() != recordSize+recordSize {
		t.Fatalf("size %d after truncating torn tail", fi.Size())
	}
}

// TestCorruptRecordRefused: a damaged record is never skipped silently.
func TestCorruptRecordRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{})
	s.Admit(mac(1), fpA)
	s.Admit(mac(2), fpA)
	s.Close()
	b, _ := os.ReadFile(path)
	b[recordSize+3] ^= 0xFF
	os.WriteFile(path, b, 0o600)
	if _, err := Open(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open of corrupted store: %v", err)
	}
}

// TestFullFailsClosed: at capacity new knocks are refused, old ones are
// still replays (CLASSIC-5.4/1).
func TestFullFailsClosed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	s := mustOpen(t, path, Options{Capacity: 2})
	defer s.Close()
	s.Admit(mac(1), fpA)
	s.Admit(mac(2), fpA)
	if _, err := s.Admit(mac(3), fpA); !errors.Is(err, protocol.ErrReplayFull) {
		t.Fatalf("admit when full: %v", err)
	}
	if _, err := s.Admit(mac(1), fpA); !errors.Is(err, protocol.ErrReplay) {
		t.Fatalf("replay when full: %v", err)
	}
}

func legacyArchive(width int, recs map[byte]int64, slots int) []byte {
	b := make([]byte, width*slots)
	i := 0
	for m, sec := range recs {
		off := (i*7 + 3) % slots * width
		mm := mac(m)
		copy(b[off:], mm[:])
		if width == 24 {
			binary.LittleEndian.PutUint64(b[off+16:], uint64(sec))
		} else {
			binary.LittleEndian.PutUint32(b[off+16:], uint32(sec))
		}
		i++
	}
	return b
}

// TestImportLegacy: a 0.81 hash archive at the hash-archive path is
// converted, keeping its digests as replays (CLASSIC-5.6), for both the
// 64-bit (24-byte) and 32-bit (20-byte) record layouts.
func TestImportLegacy(t *testing.T) {
	for _, width := range []int{24, 20} {
		path := filepath.Join(t.TempDir(), "hash_archive")
		os.WriteFile(path, legacyArchive(width, map[byte]int64{5: 1_100_000_000, 6: 1_200_000_000}, 1000), 0o600)
		s := mustOpen(t, path, Options{})
		for _, m := range []byte{5, 6} {
			if _, err := s.Admit(mac(m), fpA); !errors.Is(err, protocol.ErrReplay) {
				t.Fatalf("width %d: imported digest %d admitted: %v", width, m, err)
			}
		}
		s.Close()
		if _, err := os.Stat(path + ".0.81"); err != nil {
			t.Fatalf("width %d: original not kept: %v", width, err)
		}
	}
}

// TestImportExplicit merges a 0.81 archive into an existing store.
func TestImportExplicit(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "old")
	os.WriteFile(legacy, legacyArchive(24, map[byte]int64{9: 1_100_000_000}, 1000), 0o600)
	s := mustOpen(t, filepath.Join(dir, "replay"), Options{})
	defer s.Close()
	if n, err := s.Import(legacy); err != nil || n != 1 {
		t.Fatalf("Import = %d, %v", n, err)
	}
	if _, err := s.Admit(mac(9), fpA); !errors.Is(err, protocol.ErrReplay) {
		t.Fatalf("imported digest admitted: %v", err)
	}
	if _, err := s.Import(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("import of a missing file succeeded")
	}
}

// TestRejectsForeignFile: a file that is neither format is not clobbered.
func TestRejectsForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	os.WriteFile(path, []byte("hello world, not a store"), 0o600)
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("opened a foreign file")
	}
	if b, _ := os.ReadFile(path); string(b) != "hello world, not a store" {
		t.Fatal("foreign file changed")
	}
}

// TestPrune removes only digests of guests whose secret changed.
func TestPrune(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replay")
	fpB := GuestFingerprint("bob", []byte("old"))
	s := mustOpen(t, path, Options{})
	s.Admit(mac(1), fpA)
	s.Admit(mac(2), fpB)
	s.Close()
	n, err := Prune(path, func(f Fingerprint) bool { return f == fpA }, Options{})
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v", n, err)
	}
	s = mustOpen(t, path, Options{})
	defer s.Close()
	if _, ok := s.Seen(mac(1)); !ok {
		t.Fatal("kept guest's digest pruned")
	}
	if _, ok := s.Seen(mac(2)); ok {
		t.Fatal("changed guest's digest kept")
	}
}

func FuzzParseLegacy(f *testing.F) {
	f.Add(legacyArchive(24, map[byte]int64{1: 1_100_000_000}, 10))
	f.Add(legacyArchive(20, map[byte]int64{1: 1_100_000_000}, 12))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseLegacy(b, time.Unix(1_800_000_000, 0))
	})
}

func BenchmarkAdmit(b *testing.B) {
	s, err := Open(filepath.Join(b.TempDir(), "replay"), Options{Capacity: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	b.ReportAllocs()
	var m [protocol.MACSize]byte
	i := uint64(0)
	for b.Loop() {
		i++
		binary.BigEndian.PutUint64(m[:], i)
		if _, err := s.Admit(m, fpA); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFillWarnings: the store warns at 80 % and at 90 % of its capacity,
// once each, well before it refuses knocks (CLASSIC-5.4/2).
func TestFillWarnings(t *testing.T) {
	var buf bytes.Buffer
	s := mustOpen(t, filepath.Join(t.TempDir(), "replay"), Options{Capacity: 10,
		Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	defer s.Close()
	counts := map[int]int{}
	for i := 1; i <= 10; i++ {
		if _, err := s.Admit(mac(byte(i)), fpA); err != nil {
			t.Fatal(err)
		}
		counts[i] = strings.Count(buf.String(), "replay store filling up")
	}
	if counts[7] != 0 || counts[8] != 1 || counts[9] != 2 || counts[10] != 2 {
		t.Fatalf("warnings after each admit: %v (want the first at 8 of 10, the second at 9)", counts)
	}
}
