// Package replay is doormand's persistent, exact replay store (spec section
// 5): an append-only file of fixed-size records, one per accepted knock,
// loaded into a protocol.ReplaySet at start.
//
// A record is written with one write(2) on a file opened O_APPEND before the
// door for its knock opens, so once Admit returns the record survives a
// crash of the daemon (kill -9) at any later point (CLASSIC-5.5/2). The file
// is fsynced at most Sync apart for power-loss durability. A torn final
// record (the process died inside write) is dropped with a warning at load;
// a damaged record elsewhere stops the load, since silently skipping it
// could make a knock replayable.
//
// File layout: a 16-byte header "DOORMAN-REPLAY\x00\x01", then records of
// 32 bytes: digest[16] | accepted-at unix ns, int64 big endian [8] |
// guest fingerprint [4] | CRC-32C of the first 28 bytes [4].
package replay

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/doorman-project/doorman/protocol"
)

const (
	headerSize = 16
	recordSize = 32
)

var (
	header   = []byte("DOORMAN-REPLAY\x00\x01")
	crcTable = crc32.MakeTable(crc32.Castagnoli)
)

// ErrCorrupt reports a store file that cannot be trusted.
var ErrCorrupt = errors.New("replay store corrupted")

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

// Options configure a Store. Zero values mean defaults.
type Options struct {
	Capacity int           // 0 = protocol.DefaultReplayCapacity
	Sync     time.Duration // max time between fsyncs; 0 = 1s; <0 = fsync every record
	Now      func() time.Time
	Logger   *slog.Logger
}

// Store is the persistent replay store. It is safe for concurrent use.
type Store struct {
	path string
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	f      *os.File
	set    protocol.ReplaySet
	fps    map[[protocol.MACSize]byte]Fingerprint
	dirty  bool
	warned int // highest fill warning issued, in percent
	closed chan struct{}
	done   chan struct{}
}

// Open loads or creates the store at path. A file in Doorman 0.81's
// hash-archive format is imported: its digests are kept and the original is
// renamed to path+".0.81" (CLASSIC-5.6).
func Open(path string, opts Options) (*Store, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{path: path, opts: opts, log: log, fps: map[[protocol.MACSize]byte]Fingerprint{},
		closed: make(chan struct{}), done: make(chan struct{})}
	s.set.Capacity = opts.Capacity
	s.set.Now = opts.Now

	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		data = nil
	case err != nil:
		return nil, fmt.Errorf("replay store %s: %w", path, err)
	}
	if len(data) > 0 && !bytes.HasPrefix(data, header) {
		if err := s.convertLegacy(data); err != nil {
			return nil, err
		}
		data, err = os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("replay store %s: %w", path, err)
		}
	}
	valid, err := s.load(data)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("replay store %s: %w", path, err)
	}
	if len(data) == 0 {
		if _, err := f.Write(header); err != nil {
			f.Close()
			return nil, fmt.Errorf("replay store %s: write header: %w", path, err)
		}
		valid = headerSize
	} else if int64(valid) < int64(len(data)) {
		log.Warn("replay store: dropping torn final record (the daemon died while writing it)",
			"path", path, "bytes", len(data)-valid)
		if err := f.Truncate(int64(valid)); err != nil {
			f.Close()
			return nil, fmt.Errorf("replay store %s: truncate torn record: %w", path, err)
		}
	}
	if _, err := f.Seek(int64(valid), io.SeekStart); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay store %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("replay store %s: sync: %w", path, err)
	}
	s.f = f
	s.checkFillLocked()
	go s.routineSync()
	return s, nil
}

// load fills the set from data and returns how many bytes are valid.
func (s *Store) load(data []byte) (int, error) {
	if len(data) == 0 {
		return 0, nil
	}
	off := headerSize
	for ; off+recordSize <= len(data); off += recordSize {
		rec := data[off : off+recordSize]
		if crc32.Checksum(rec[:28], crcTable) != binary.BigEndian.Uint32(rec[28:]) {
			return 0, fmt.Errorf("%w: %s: bad record at byte %d of %d; move the file aside to start afresh "+
				"(knocks accepted before could then be replayed until their secrets change)", ErrCorrupt, s.path, off, len(data))
		}
		var mac [protocol.MACSize]byte
		copy(mac[:], rec[:16])
		s.set.Insert(mac, time.Unix(0, int64(binary.BigEndian.Uint64(rec[16:24]))))
		var fp Fingerprint
		copy(fp[:], rec[24:28])
		s.fps[mac] = fp
	}
	return off, nil
}

// Admit records mac, accepted for the guest with fingerprint fp, unless it
// was seen before (protocol.ErrReplay, with the time it was first
// accepted) or the store is full (protocol.ErrReplayFull). The record is in
// the file when Admit returns nil.
func (s *Store) Admit(mac [protocol.MACSize]byte, fp Fingerprint) (time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return time.Time{}, fmt.Errorf("replay store %s: closed", s.path)
	}
	t, err := s.set.Admit(mac)
	if err != nil {
		if errors.Is(err, protocol.ErrReplayFull) {
			return t, fmt.Errorf("replay store %s holds %d of %d digests: %w; raise hash-archive-size, or change "+
				"secrets and run doormand --prune-replay", s.path, s.set.Len(), s.set.Cap(), err)
		}
		return t, err
	}
	var rec [recordSize]byte
	encode(&rec, mac, t, fp)
	if _, err := s.f.Write(rec[:]); err != nil {
		// The digest stays in memory as seen: refusing it again is safe.
		return t, fmt.Errorf("replay store %s: write: %w", s.path, err)
	}
	s.fps[mac] = fp
	if s.opts.Sync < 0 {
		if err := s.f.Sync(); err != nil {
			return t, fmt.Errorf("replay store %s: sync: %w", s.path, err)
		}
	} else {
		s.dirty = true
	}
	s.checkFillLocked()
	return t, nil
}

func encode(rec *[recordSize]byte, mac [protocol.MACSize]byte, t time.Time, fp Fingerprint) {
	copy(rec[:16], mac[:])
	binary.BigEndian.PutUint64(rec[16:24], uint64(t.UnixNano()))
	copy(rec[24:28], fp[:])
	binary.BigEndian.PutUint32(rec[28:], crc32.Checksum(rec[:28], crcTable))
}

// checkFillLocked warns at 80 % and 90 % fill (CLASSIC-5.4/2).
func (s *Store) checkFillLocked() {
	pct := s.set.Len() * 100 / s.set.Cap()
	for _, level := range []int{90, 80} {
		if pct >= level && s.warned < level {
			s.warned = level
			s.log.Warn("replay store filling up: at capacity no new knock will be accepted",
				"path", s.path, "digests", s.set.Len(), "capacity", s.set.Cap(), "percent", pct)
			return
		}
	}
}

// Len returns the number of digests held, and Cap the capacity.
func (s *Store) Len() int { s.mu.Lock(); defer s.mu.Unlock(); return s.set.Len() }

// Cap returns the capacity in force.
func (s *Store) Cap() int { s.mu.Lock(); defer s.mu.Unlock(); return s.set.Cap() }

// Seen reports whether mac was accepted, and when.
func (s *Store) Seen(mac [protocol.MACSize]byte) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.set.Seen(mac)
}

func (s *Store) routineSync() {
	defer close(s.done)
	every := s.opts.Sync
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-t.C:
			s.mu.Lock()
			if s.dirty && s.f != nil {
				if err := s.f.Sync(); err != nil {
					s.log.Error("replay store: sync failed", "path", s.path, "err", err)
				} else {
					s.dirty = false
				}
			}
			s.mu.Unlock()
		}
	}
}

// Close syncs and closes the file.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.f == nil {
		s.mu.Unlock()
		return nil
	}
	f := s.f
	s.f = nil
	s.mu.Unlock()
	close(s.closed)
	<-s.done
	err := f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("replay store %s: close: %w", s.path, err)
	}
	return nil
}
