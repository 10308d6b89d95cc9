package replay

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func guest(b byte) [32]byte { return [32]byte{b, 0x5A, 31: b} }

func openStampsT(t interface{ Fatal(...any) }, path string, o Options) *Stamps {
	s, err := OpenStamps(path, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStampsAdvance: a timestamp is accepted only if strictly later than
// the guest's last; guests are independent.
func TestStampsAdvance(t *testing.T) {
	s := openStampsT(t, filepath.Join(t.TempDir(), "stamps"), Options{})
	defer s.Close()
	for _, c := range []struct {
		g        byte
		ts, last uint64
		err      error
	}{
		{1, 100, 0, nil},
		{1, 100, 100, ErrStale},
		{1, 99, 100, ErrStale},
		{1, 101, 100, nil},
		{2, 5, 0, nil},
		{2, 0, 5, ErrStale},
		{1, 1 << 63, 101, nil},
	} {
		last, err := s.Advance(guest(c.g), c.ts)
		if last != c.last || !errors.Is(err, c.err) {
			t.Fatalf("Advance(%d, %d) = %d, %v; want %d, %v", c.g, c.ts, last, err, c.last, c.err)
		}
	}
	if ts, ok := s.Last(guest(1)); !ok || ts != 1<<63 {
		t.Fatalf("Last = %d, %v", ts, ok)
	}
	if _, ok := s.Last(guest(3)); ok {
		t.Fatal("Last of an unknown guest")
	}
}

// TestPropertyStamps drives the stamp store and a map through random
// advances, reopenings and compactions: they always agree, so no timestamp
// is accepted twice across restarts.
func TestPropertyStamps(t *testing.T) {
	dir := t.TempDir()
	n := 0
	rapid.Check(t, func(t *rapid.T) {
		n++
		path := filepath.Join(dir, fmt.Sprint("stamps", n))
		o := Options{noSync: true} // durability is TestKill9's; this is about the logic
		s := openStampsT(t, path, o)
		defer func() { s.Close() }()
		model := map[[32]byte]uint64{}
		for range rapid.IntRange(1, 100).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0:
				s.Close()
				s = openStampsT(t, path, o)
				if s.Len() != len(model) {
					t.Fatalf("reopened with %d guests, model %d", s.Len(), len(model))
				}
			case 1:
				s.mu.Lock()
				err := s.compactLocked("")
				s.mu.Unlock()
				if err != nil {
					t.Fatal(err)
				}
			default:
				g := guest(byte(rapid.IntRange(0, 4).Draw(t, "guest")))
				ts := rapid.Uint64Range(0, 30).Draw(t, "ts")
				last, err := s.Advance(g, ts)
				cur, known := model[g]
				if known && ts <= cur {
					if !errors.Is(err, ErrStale) || last != cur {
						t.Fatalf("Advance(%x, %d) = %d, %v; want %d, ErrStale", g[0], ts, last, err, cur)
					}
					continue
				}
				if err != nil || last != cur {
					t.Fatalf("Advance(%x, %d) = %d, %v; want %d, nil", g[0], ts, last, err, cur)
				}
				model[g] = ts
			}
			for g, want := range model {
				if got, ok := s.Last(g); !ok || got != want {
					t.Fatalf("Last(%x) = %d, %v; want %d", g[0], got, ok, want)
				}
			}
		}
	})
}

// TestStampsCompaction: the file is one record per guest after an open,
// and the sync routine compacts a file that grew with superseded records.
func TestStampsCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	s := openStampsT(t, path, Options{})
	for i := range 100 {
		s.Advance(guest(byte(i%3)), uint64(i))
	}
	s.Close()
	s = openStampsT(t, path, Options{Sync: 5 * time.Millisecond})
	defer s.Close()
	if got := size(t, path); got != 64+3*64 {
		t.Fatalf("file is %d bytes after open, want one record per guest (%d)", got, 64+3*64)
	}
	for i := range 2000 {
		if _, err := s.Advance(guest(byte(i%3)), uint64(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	// Superseded records are bounded: twice the guests plus 1024.
	limit := int64(64 * (1 + 2*3 + 1024))
	deadline := time.Now().Add(10 * time.Second)
	for size(t, path) > limit && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := size(t, path); got > limit {
		t.Fatalf("file is %d bytes, not compacted by the sync routine", got)
	}
	if last, err := s.Advance(guest(1), 1000+1999); !errors.Is(err, ErrStale) || last != 1000+1999 {
		t.Fatalf("after compaction: %d, %v", last, err)
	}
}

// TestStampsShortWrite: a failed write leaves the guest's last timestamp
// and the file as they were.
func TestStampsShortWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	o, ff := faulty(Options{})
	s := openStampsT(t, path, o)
	defer s.Close()
	s.Advance(guest(1), 10)
	ff.partial = 40
	if _, err := s.Advance(guest(1), 11); !errors.Is(err, ErrWrite) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Advance on a full disk: %v", err)
	}
	if ts, _ := s.Last(guest(1)); ts != 10 || size(t, path) != 128 {
		t.Fatalf("after a failed write: last %d, %d bytes", ts, size(t, path))
	}
	if _, err := s.Advance(guest(1), 11); err != nil {
		t.Fatal(err)
	}
}

// TestStampsVanishAndLock: the stamp store shares the replay store's
// lock and its checks of the file.
func TestStampsVanishAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	s := openStampsT(t, path, Options{})
	s.Advance(guest(1), 10)
	if _, err := OpenStamps(path, Options{}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open: %v, want ErrLocked", err)
	}
	os.Truncate(path, 64)
	if _, err := s.Advance(guest(1), 11); !errors.Is(err, ErrStoreChanged) {
		t.Fatalf("Advance after truncation: %v, want ErrStoreChanged", err)
	}
	s.Close()
}

// TestStampsRefusesOtherFiles: a replay store is not taken for a stamp
// file, nor the other way round, and neither is changed.
func TestStampsRefusesOtherFiles(t *testing.T) {
	dir := t.TempDir()
	rp := filepath.Join(dir, "replay")
	r := mustOpen(t, rp, Options{})
	admit(t, r, macN(1))
	r.Close()
	before, _ := os.ReadFile(rp)
	if _, err := OpenStamps(rp, Options{}); err == nil {
		t.Fatal("replay store opened as a stamp store")
	}
	sp := filepath.Join(dir, "stamps")
	st := openStampsT(t, sp, Options{})
	st.Advance(guest(1), 1)
	st.Close()
	if _, err := Open(sp, Options{}); err == nil {
		t.Fatal("stamp store opened as a replay store")
	}
	if after, _ := os.ReadFile(rp); string(after) != string(before) {
		t.Fatal("replay store changed")
	}
}

// TestStampsRepair: damage in the middle is refused; Repair keeps the
// largest timestamp of every guest among the records that check.
func TestStampsRepair(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stamps")
	s := openStampsT(t, path, Options{Sync: time.Hour})
	for i := range 10 {
		s.Advance(guest(byte(i%2)), uint64(i))
	}
	s.Close()
	b, _ := os.ReadFile(path)
	// The file was not reopened, so not compacted: records 1-10 are the
	// ten advances. Damage the third.
	b[64*3+7] ^= 1
	os.WriteFile(path, b, 0o600)
	if _, err := OpenStamps(path, Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open: %v, want ErrCorrupt", err)
	}
	rep, err := Repair(path, Options{})
	if err != nil || rep.Records != 9 || rep.Backup == "" {
		t.Fatalf("Repair = %+v, %v", rep, err)
	}
	s = openStampsT(t, path, Options{})
	defer s.Close()
	if a, _ := s.Last(guest(0)); a != 8 {
		t.Fatalf("guest 0 last %d, want 8", a)
	}
	if b, _ := s.Last(guest(1)); b != 9 {
		t.Fatalf("guest 1 last %d, want 9", b)
	}
}
