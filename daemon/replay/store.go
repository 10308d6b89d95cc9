// Package replay keeps doormand's durable replay state: the classic
// protocol's exact store of accepted knock digests (Store, spec section 5)
// and the modern protocol's last accepted timestamp per guest (Stamps).
//
// Both are append-only files of fixed-size records that each carry their
// own CRC-32C, behind a header of one record's size, so that with record
// sizes dividing 4096 no record ever straddles a 4 KiB block. A record is
// written with one write(2) to a file opened O_APPEND (never through a
// symbolic link) before the caller acts on it, so once Admit or Advance
// returns the record survives a crash of the daemon (kill -9) at any later
// point (CLASSIC-5.5/2); the file is fsynced at most a second apart for
// power-loss durability. A failed or short write (a full disk) is undone
// with ftruncate; if that fails too, or the file vanishes, is replaced, or
// shrinks or grows under the store, the store refuses every knock until
// restart (ErrStoreFailed, ErrStoreChanged). The file is locked (flock) for
// the store's lifetime, so offline tools refuse to run beside the daemon
// (ErrLocked).
//
// A torn final record is dropped at open: its write failed, so its knock
// was refused (or, after a power loss, it was not yet synced). Damage
// anywhere else cannot come from the store's own writes; Open refuses it
// (ErrCorrupt) and Repair rewrites the file keeping every record that
// checks.
//
// Replay store file, format 2: a 32-byte header (magic
// "DOORMAN-REPLAY\x00\x02"), then records of 32 bytes: digest[16] |
// accepted-at unix ns, int64 big endian [8] | guest fingerprint [4] |
// CRC-32C of the first 28 bytes [4]. Format 1 (a 16-byte header, same
// records) and Doorman 0.81 hash archives are converted at open.
package replay

import (
	"bufio"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

const recordSize = 32

var (
	replayFormat = format{name: "replay store", magic: "DOORMAN-REPLAY\x00\x02", recSize: recordSize}
	// v1Header is format 1's whole header: records followed at byte 16,
	// so every 128th straddled a 4 KiB block.
	v1Header = []byte("DOORMAN-REPLAY\x00\x01")
)

// Fingerprint identifies a guest's group and secret without revealing the
// secret, so records of knocks that can no longer verify can be pruned.
type Fingerprint [4]byte

// GuestFingerprint returns the fingerprint of group and secret.
func GuestFingerprint(group string, secret []byte) Fingerprint {
	h := sha256.New()
	h.Write([]byte("doorman replay fingerprint\x00"))
	h.Write([]byte(group))
	h.Write([]byte{0})
	h.Write(secret)
	var f Fingerprint
	copy(f[:], h.Sum(nil))
	return f
}

// Options configure a Store or Stamps. Zero values mean defaults.
type Options struct {
	Capacity int           // replay digests; 0 = protocol.DefaultReplayCapacity
	Sync     time.Duration // max time between fsyncs, at most 1s; 0 = 1s; <0 = fsync every record
	Now      func() time.Time
	Logger   *slog.Logger

	wrap   func(*os.File) file // tests: inject write failures
	noSync bool                // fuzz tests: no fsync
}

func (o Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// Store is the persistent replay store. It is safe for concurrent use.
//
// Memory holds only the digests and the second each was accepted
// (protocol.ReplaySet, 20 bytes a slot); fingerprints and exact times stay
// in the file, which Prune reads.
type Store struct {
	opts Options

	mu     sync.Mutex
	j      *journal
	set    protocol.ReplaySet
	warned int // highest fill warning issued, in percent
}

// Open loads or creates the store at path and locks it. A format-1 store or
// a Doorman 0.81 hash archive at path is converted (CLASSIC-5.6); the 0.81
// original is kept as path+".0.81". Open fails with ErrLocked while another
// process holds the store, and with ErrCorrupt if the file is damaged
// other than by a torn final record.
func Open(path string, opts Options) (*Store, error) {
	s, _, err := open(path, opts, false)
	if err != nil {
		return nil, err
	}
	s.j.start(&s.mu, opts.Sync, nil)
	return s, nil
}

func open(path string, opts Options, repair bool) (*Store, RepairReport, error) {
	j, err := acquire(path, replayFormat, opts)
	if err != nil {
		return nil, RepairReport{}, err
	}
	s := &Store{opts: opts, j: j}
	s.set.Capacity = opts.Capacity
	s.set.Now = opts.Now
	rep, err := s.load(repair)
	if err != nil {
		j.closeNow()
		return nil, rep, err
	}
	s.checkFillLocked()
	return s, rep, nil
}

// load reads or converts the file into the set.
func (s *Store) load(repair bool) (RepairReport, error) {
	j := s.j
	h, size, err := j.head()
	if err != nil {
		return RepairReport{}, err
	}
	switch replayFormat.classify(h, size) {
	case contentFresh:
		return RepairReport{}, j.initLocked()
	case contentNative:
		return s.loadNative(h, size, repair)
	case contentV1:
		return s.convertV1(size)
	default:
		return s.convertLegacy(size)
	}
}

// reserve sizes the set for n loaded digests and room for an eighth more
// admissions (within the capacity), so that the first knocks after a start
// do not rehash a large table.
func (s *Store) reserve(n int) {
	s.set.Reserve(n + min(n/8+1024, max(0, s.set.Cap()-n)))
}

func (s *Store) insert(_ int64, rec []byte) error {
	mac, at, _ := decode(rec)
	s.set.Insert(mac, at)
	return nil
}

// loadNative loads a format-2 file. Damage before its last good record
// makes it ErrCorrupt unless repairing.
func (s *Store) loadNative(h []byte, size int64, repair bool) (RepairReport, error) {
	j := s.j
	hsize := int64(recordSize)
	headerOK := replayFormat.headerOK(h)
	if !headerOK && !repair {
		return RepairReport{}, fmt.Errorf("%w: %s: the header fails its checksum; run doormand --repair-replay, "+
			"which keeps every record that checks (the original is kept as %s.damaged)", ErrCorrupt, j.path, j.path)
	}
	s.reserve(int((size - hsize) / recordSize))
	res, err := scan(j.f, hsize, size, recordSize, s.insert)
	if err != nil {
		return RepairReport{}, fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	if len(res.damaged) == 0 && headerOK {
		rep := RepairReport{Records: res.records, DamagedBytes: size - res.end}
		if res.end < size {
			rep.Places = 1
		}
		return rep, j.truncateTailLocked(res.end, size)
	}
	if !repair {
		return RepairReport{}, fmt.Errorf("%w: %s: %s, followed by records that check; doorman's own writes cannot leave this "+
			"(the disk or another program damaged it). Stop here and run doormand --repair-replay: it keeps every record "+
			"that checks and the original as %s.damaged (a record that fails its checksum is either a write that failed, "+
			"whose knock was refused, or lost to the damage)", ErrCorrupt, j.path, res.describe(), j.path)
	}
	return s.rewriteScanned(hsize, size, j.path+".damaged")
}

// rewriteScanned rewrites the file from the records that check in
// [start, size), keeping the original as backup if any bytes are dropped.
func (s *Store) rewriteScanned(start, size int64, backup string) (RepairReport, error) {
	j := s.j
	var rep RepairReport
	old := j.f
	err := j.rewriteLocked(func(w *bufio.Writer) (string, error) {
		res, err := scan(old, start, size, recordSize, func(off int64, rec []byte) error {
			w.Write(rec)
			return s.insert(off, rec)
		})
		if err != nil {
			return "", err
		}
		rep = RepairReport{Records: res.records, DamagedBytes: res.bytes + size - res.end, Places: res.places, Rewritten: true}
		if size > res.end {
			rep.Places++
		}
		if rep.DamagedBytes > 0 {
			rep.Backup = backup
		}
		return rep.Backup, nil
	})
	if err != nil {
		return RepairReport{}, err
	}
	if rep.DamagedBytes > 0 {
		j.log.Warn(j.k.name+": rewrote the file without bytes that fail their checksums, keeping every record that checks",
			"path", j.path, "records", rep.Records, "dropped_bytes", rep.DamagedBytes, "places", rep.Places, "original", rep.Backup)
	}
	return rep, nil
}

// convertV1 rewrites a format-1 store as format 2. Format 1 let a full
// disk tear a record at a block boundary and then wrote on after it, so
// the conversion keeps every record that checks wherever it lies; the
// original is kept as path+".v1" if anything was dropped.
func (s *Store) convertV1(size int64) (RepairReport, error) {
	s.reserve(int((size - int64(len(v1Header))) / recordSize))
	rep, err := s.rewriteScanned(int64(len(v1Header)), size, s.j.path+".v1")
	if err != nil {
		return rep, err
	}
	s.j.log.Info("replay store converted to format 2 (records aligned to 4 KiB blocks)", "path", s.j.path, "digests", s.set.Len())
	return rep, nil
}

// convertLegacy replaces a 0.81 archive at the store's path by a store
// holding its digests, keeping the original as path+".0.81".
func (s *Store) convertLegacy(size int64) (RepairReport, error) {
	j := s.j
	data := make([]byte, size)
	if _, err := j.f.ReadAt(data, 0); err != nil {
		return RepairReport{}, fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	w, err := legacyWidth(data, s.opts.now())
	if err != nil {
		return RepairReport{}, fmt.Errorf("%s %s: neither a doorman replay store nor a 0.81 hash archive (%v); "+
			"point hash-archive at a new file", j.k.name, j.path, err)
	}
	s.reserve(legacyCount(data, w))
	n := 0
	err = j.rewriteLocked(func(bw *bufio.Writer) (string, error) {
		eachLegacy(data, w, func(r LegacyRecord) {
			if _, ok := s.set.Seen(r.MAC); ok {
				return
			}
			var rec [recordSize]byte
			encode(&rec, r.MAC, r.At, Fingerprint{})
			bw.Write(rec[:])
			s.set.Insert(r.MAC, r.At)
			n++
		})
		return j.path + ".0.81", nil
	})
	if err != nil {
		return RepairReport{}, err
	}
	j.log.Info("imported 0.81 hash archive", "path", j.path, "digests", n, "original", j.path+".0.81")
	return RepairReport{Records: n, Rewritten: true}, nil
}

// Admit records mac, accepted for the guest with fingerprint fp, unless it
// was seen before (protocol.ErrReplay, with the second it was first
// accepted) or the store is full (protocol.ErrReplayFull). The record is in
// the file when Admit returns nil. Other errors refuse the knock too:
// ErrWrite (this record could not be written; the store goes on),
// ErrStoreChanged or ErrStoreFailed (every knock is refused until restart).
func (s *Store) Admit(mac [protocol.MACSize]byte, fp Fingerprint) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, err := s.set.Check(mac); err != nil {
		if errors.Is(err, protocol.ErrReplayFull) {
			return t, fmt.Errorf("replay store %s holds %d of %d digests: %w; raise hash-archive-size, or change "+
				"secrets and run doormand --prune-replay", s.j.path, s.set.Len(), s.set.Cap(), err)
		}
		return t, err
	}
	now := s.opts.now()
	var rec [recordSize]byte
	encode(&rec, mac, now, fp)
	if err := s.j.appendLocked(rec[:]); err != nil {
		return time.Time{}, err
	}
	s.set.Insert(mac, now)
	if s.opts.Sync < 0 {
		if err := s.j.syncLocked(); err != nil {
			return time.Time{}, err
		}
	}
	s.checkFillLocked()
	return now, nil
}

func encode(rec *[recordSize]byte, mac [protocol.MACSize]byte, t time.Time, fp Fingerprint) {
	copy(rec[:16], mac[:])
	binary.BigEndian.PutUint64(rec[16:24], uint64(t.UnixNano()))
	copy(rec[24:28], fp[:])
	seal(rec[:])
}

func decode(rec []byte) (mac [protocol.MACSize]byte, at time.Time, fp Fingerprint) {
	copy(mac[:], rec[:16])
	at = time.Unix(0, int64(binary.BigEndian.Uint64(rec[16:24])))
	copy(fp[:], rec[24:28])
	return mac, at, fp
}

// checkFillLocked warns at 80 % and 90 % fill (CLASSIC-5.4/2).
func (s *Store) checkFillLocked() {
	pct := s.set.Len() * 100 / s.set.Cap()
	for _, level := range []int{90, 80} {
		if pct >= level && s.warned < level {
			s.warned = level
			s.j.log.Warn("replay store filling up: at capacity no new knock will be accepted",
				"path", s.j.path, "digests", s.set.Len(), "capacity", s.set.Cap(), "percent", pct)
			return
		}
	}
}

// Len returns the number of digests held.
func (s *Store) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.set.Len() }

// Cap returns the capacity in force.
func (s *Store) Cap() int { s.mu.Lock(); defer s.mu.Unlock(); return s.set.Cap() }

// Seen reports whether mac was accepted, and when, to the second.
func (s *Store) Seen(mac [protocol.MACSize]byte) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Seen(mac)
}

// Err returns why the store refuses every knock (wrapping ErrStoreChanged
// or ErrStoreFailed), or nil while it works. The sync routine checks the
// file at least once a second, so Err notices a vanished file without a
// knock.
func (s *Store) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j.broken
}

// Close syncs and closes the file, releasing the lock.
func (s *Store) Close() error { return s.j.close(&s.mu) }

// Import adds the digests of a 0.81 hash archive file to the store (for
// `doormand --import-archive`), ignoring capacity, and returns how many were
// new. Records are written in batches of one 4 KiB block; a batch that
// fails to write is undone and the error returned, with the count of the
// digests imported before it.
func (s *Store) Import(legacyPath string) (int, error) {
	data, err := os.ReadFile(legacyPath)
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", legacyPath, err)
	}
	w, err := legacyWidth(data, s.opts.now())
	if err != nil {
		return 0, fmt.Errorf("import %s: %w", legacyPath, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.set.Reserve(legacyCount(data, w))
	n := 0
	batch := make([]byte, 0, 4096)
	var macs []LegacyRecord
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := s.j.appendLocked(batch); err != nil {
			return err
		}
		for _, r := range macs {
			s.set.Insert(r.MAC, r.At)
		}
		n += len(macs)
		batch, macs = batch[:0], macs[:0]
		return nil
	}
	eachLegacy(data, w, func(r LegacyRecord) {
		if err != nil {
			return
		}
		if _, ok := s.set.Seen(r.MAC); ok {
			return
		}
		for _, m := range macs {
			if m.MAC == r.MAC {
				return
			}
		}
		var rec [recordSize]byte
		encode(&rec, r.MAC, r.At, Fingerprint{})
		batch = append(batch, rec[:]...)
		macs = append(macs, r)
		if len(batch) == cap(batch) {
			err = flush()
		}
	})
	if err == nil {
		err = flush()
	}
	if err == nil {
		err = s.j.syncLocked()
	}
	if err != nil {
		return n, fmt.Errorf("import %s: %w", legacyPath, err)
	}
	return n, nil
}

// Prune rewrites the store without the digests of knocks that can no longer
// verify: those recorded with a guest fingerprint that keep rejects. Digests
// imported from 0.81 carry no fingerprint and are kept. It returns how many
// were removed. It takes the store's lock, so it fails with ErrLocked while
// doormand runs.
func Prune(path string, keep func(Fingerprint) bool, opts Options) (int, error) {
	s, _, err := open(path, opts, false)
	if err != nil {
		return 0, err
	}
	defer s.j.closeNow()
	drop := func(rec []byte) bool {
		_, _, fp := decode(rec)
		return fp != (Fingerprint{}) && !keep(fp)
	}
	j := s.j
	removed := 0
	if _, err := scan(j.f, recordSize, j.size, recordSize, func(_ int64, rec []byte) error {
		if drop(rec) {
			removed++
		}
		return nil
	}); err != nil || removed == 0 {
		return 0, err
	}
	old := j.f
	err = j.rewriteLocked(func(w *bufio.Writer) (string, error) {
		_, err := scan(old, recordSize, j.size, recordSize, func(_ int64, rec []byte) error {
			if !drop(rec) {
				w.Write(rec)
			}
			return nil
		})
		return "", err
	})
	if err != nil {
		return 0, err
	}
	return removed, nil
}

// RepairReport says what Repair did.
type RepairReport struct {
	Records      int    // records kept
	DamagedBytes int64  // bytes dropped because no record in them checks
	Places       int    // stretches those bytes were in
	Backup       string // where the original was kept, if anything was dropped
	Rewritten    bool   // the file was rewritten (converted or repaired)
}

// Repair makes the store or stamp file at path loadable again, for
// `doormand --repair-replay`: it rewrites it keeping every record that
// checks, wherever it lies, and keeps the original as path+".damaged" if
// anything was dropped. A dropped record is safe to lose in the one way
// doorman's writes can tear one: its write failed, so its knock was
// refused. It takes the lock, so it fails with ErrLocked while doormand
// runs.
func Repair(path string, opts Options) (RepairReport, error) {
	f, err := openNoFollow(path, os.O_RDONLY, 0)
	if err != nil {
		return RepairReport{}, fmt.Errorf("repair: %w", err)
	}
	magic := make([]byte, 16)
	_, err = f.ReadAt(magic, 0)
	f.Close()
	if err == nil && string(magic) == stampsFormat.magic {
		st, rep, err := openStamps(path, opts, true)
		if err != nil {
			return rep, err
		}
		st.j.closeNow()
		return rep, nil
	}
	s, rep, err := open(path, opts, true)
	if err != nil {
		return rep, err
	}
	s.j.closeNow()
	return rep, nil
}
