package replay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
)

// Stamp file, format 1: a 64-byte header (magic "DOORMAN-STAMPS\x00\x01"),
// then records of 64 bytes: guest public key [32] | timestamp, uint64 big
// endian [8] | zeros [20] | CRC-32C of the first 60 bytes [4]. A guest's
// last timestamp is the largest in its records; the file is compacted to
// one record per guest at open and whenever superseded records outnumber
// the live ones (plus 1024).
const stampSize = 64

var stampsFormat = format{name: "stamp store", magic: "DOORMAN-STAMPS\x00\x01", recSize: stampSize}

// ErrStale: the timestamp is not later than the last one accepted from
// the guest, so the knock may be a replay.
var ErrStale = errors.New("timestamp not later than the guest's last accepted knock")

// Stamps is the modern protocol's durable replay state (spec section 12):
// the last accepted timestamp of each guest. A knock is accepted only if
// its timestamp is strictly later than that guest's last (WireGuard's
// rule), and the new timestamp is in the file before Advance returns, so
// no replay is accepted after a restart or kill -9 either; with one record
// per guest after compaction the file never fills. The window check
// against the server's clock is the caller's. It is safe for concurrent
// use.
type Stamps struct {
	opts Options

	mu      sync.Mutex
	j       *journal
	last    map[[32]byte]uint64
	records int // records in the file
}

// OpenStamps loads or creates the stamp store at path and locks it, with
// the same errors as Open.
func OpenStamps(path string, opts Options) (*Stamps, error) {
	s, _, err := openStamps(path, opts, false)
	if err != nil {
		return nil, err
	}
	s.j.start(&s.mu, opts.Sync, s.tick)
	return s, nil
}

func openStamps(path string, opts Options, repair bool) (*Stamps, RepairReport, error) {
	j, err := acquire(path, stampsFormat, opts)
	if err != nil {
		return nil, RepairReport{}, err
	}
	s := &Stamps{opts: opts, j: j, last: map[[32]byte]uint64{}}
	h, size, err := j.head()
	var rep RepairReport
	switch {
	case err != nil:
	case stampsFormat.classify(h, size) == contentFresh:
		err = j.initLocked()
	case stampsFormat.classify(h, size) == contentNative:
		rep, err = s.load(h, size, repair)
	default:
		err = fmt.Errorf("%s %s: not a doorman stamp store; point the configuration at a new file", j.k.name, path)
	}
	if err != nil {
		j.closeNow()
		return nil, rep, err
	}
	return s, rep, nil
}

func (s *Stamps) fold(_ int64, rec []byte) error {
	var guest [32]byte
	copy(guest[:], rec)
	ts := binary.BigEndian.Uint64(rec[32:])
	if cur, ok := s.last[guest]; !ok || ts > cur {
		s.last[guest] = ts
	}
	s.records++
	return nil
}

func (s *Stamps) load(h []byte, size int64, repair bool) (RepairReport, error) {
	j := s.j
	headerOK := stampsFormat.headerOK(h)
	res, err := scan(j.f, stampSize, size, stampSize, s.fold)
	if err != nil {
		return RepairReport{}, fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	rep := RepairReport{Records: res.records, DamagedBytes: res.bytes + size - res.end, Places: res.places}
	if size > res.end {
		rep.Places++
	}
	if len(res.damaged) > 0 || !headerOK {
		if !repair {
			what := res.describe()
			if !headerOK {
				what = "the header fails its checksum"
			}
			return RepairReport{}, fmt.Errorf("%w: %s: %s; doorman's own writes cannot leave this. Stop here and run "+
				"doormand --repair-replay: it keeps every record that checks and the original as %s.damaged",
				ErrCorrupt, j.path, what, j.path)
		}
		if rep.DamagedBytes > 0 {
			rep.Backup = j.path + ".damaged"
		}
		rep.Rewritten = true
		return rep, s.compactLocked(rep.Backup)
	}
	if err := j.truncateTailLocked(res.end, size); err != nil {
		return RepairReport{}, err
	}
	if s.records > len(s.last) {
		return rep, s.compactLocked("")
	}
	return rep, nil
}

// compactLocked rewrites the file as one record per guest.
func (s *Stamps) compactLocked(backup string) error {
	guests := make([][32]byte, 0, len(s.last))
	for g := range s.last {
		guests = append(guests, g)
	}
	slices.SortFunc(guests, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	err := s.j.rewriteLocked(func(w *bufio.Writer) (string, error) {
		for _, g := range guests {
			rec := encodeStamp(g, s.last[g])
			w.Write(rec[:])
		}
		return backup, nil
	})
	if err != nil {
		return err
	}
	s.records = len(guests)
	return nil
}

// tick compacts a file whose superseded records outnumber the live ones.
func (s *Stamps) tick() {
	if s.records <= 2*len(s.last)+1024 {
		return
	}
	if err := s.compactLocked(""); err != nil {
		s.j.log.Error("stamp store: compaction failed; the file keeps growing until it succeeds", "path", s.j.path, "err", err)
	}
}

func encodeStamp(guest [32]byte, ts uint64) [stampSize]byte {
	var rec [stampSize]byte
	copy(rec[:], guest[:])
	binary.BigEndian.PutUint64(rec[32:], ts)
	seal(rec[:])
	return rec
}

// Advance accepts ts as guest's new last timestamp if it is strictly later
// than the last one accepted (or the guest has none), writing it to the
// file before returning, and returns the previous one (0 for a first). If
// ts is not later it returns the last one and ErrStale. Other errors
// (ErrWrite, ErrStoreChanged, ErrStoreFailed, as for Store.Admit) also
// mean the knock must be refused.
func (s *Stamps) Advance(guest [32]byte, ts uint64) (last uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	last, ok := s.last[guest]
	if ok && ts <= last {
		return last, ErrStale
	}
	rec := encodeStamp(guest, ts)
	if err := s.j.appendLocked(rec[:]); err != nil {
		return last, err
	}
	s.last[guest] = ts
	s.records++
	if s.opts.Sync < 0 {
		if err := s.j.syncLocked(); err != nil {
			return last, err
		}
	}
	return last, nil
}

// Last returns guest's last accepted timestamp, if it has one.
func (s *Stamps) Last(guest [32]byte) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts, ok := s.last[guest]
	return ts, ok
}

// Len returns the number of guests with a timestamp.
func (s *Stamps) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return len(s.last) }

// Err returns why the store refuses every knock, or nil while it works
// (see Store.Err).
func (s *Stamps) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.j.broken
}

// Close syncs and closes the file, releasing the lock.
func (s *Stamps) Close() error { return s.j.close(&s.mu) }
