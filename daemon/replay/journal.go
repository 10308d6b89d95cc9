package replay

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Errors a store returns; callers count refusals by these reasons.
var (
	// ErrCorrupt: the file is damaged where doorman's own writes cannot
	// have damaged it; Open refuses it and names the repair.
	ErrCorrupt = errors.New("replay store corrupted")
	// ErrLocked: another process holds the store (see LockedError).
	ErrLocked = errors.New("store locked by another process")
	// ErrWrite: the record of a knock could not be written (a full disk,
	// say) and the file was restored to its last good length. The knock
	// is refused; the store goes on.
	ErrWrite = errors.New("store write failed")
	// ErrStoreChanged: the store's file vanished, was replaced, or shrank or
	// grew under the store. Every knock is refused until doormand restarts.
	ErrStoreChanged = errors.New("store file changed under the running store")
	// ErrStoreFailed: a write failed and the file could not be restored, or
	// the file could not be synced. Every knock is refused until doormand
	// restarts.
	ErrStoreFailed = errors.New("store failed")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// LockedError reports a store held by another process, normally a running
// doormand, naming it when the system tells who holds the lock.
type LockedError struct {
	Path    string
	PID     int    // 0 if unknown
	Command string // the holder's command name, if known
}

func (e *LockedError) Error() string {
	holder := "another process"
	if e.PID > 0 {
		holder = fmt.Sprintf("process %d", e.PID)
		if e.Command != "" {
			holder += " (" + e.Command + ")"
		}
	}
	return fmt.Sprintf("%s is locked by %s, normally a running doormand: stop it first (systemctl stop doormand), then try again", e.Path, holder)
}

// Unwrap returns ErrLocked.
func (e *LockedError) Unwrap() error { return ErrLocked }

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// sealed reports whether a record's last four bytes are the CRC-32C of the
// rest; seal makes them so.
func sealed(rec []byte) bool {
	n := len(rec) - 4
	return crc32.Checksum(rec[:n], crcTable) == binary.BigEndian.Uint32(rec[n:])
}

func seal(rec []byte) {
	n := len(rec) - 4
	binary.BigEndian.PutUint32(rec[n:], crc32.Checksum(rec[:n], crcTable))
}

// format is one kind of journal file: a header of one record's size (so
// that with a record size dividing 4096 no record ever straddles a 4 KiB
// block), then records of that size, each ending in its CRC-32C. The header
// is magic[16] | record size, uint32 big endian [4] | zeros | CRC-32C [4].
type format struct {
	name    string // for messages: "replay store"
	magic   string // 16 bytes
	recSize int
}

func (k format) header() []byte {
	h := make([]byte, k.recSize)
	copy(h, k.magic)
	binary.BigEndian.PutUint32(h[16:], uint32(k.recSize))
	seal(h)
	return h
}

// headerOK reports whether h is an intact header of this format.
func (k format) headerOK(h []byte) bool {
	return len(h) == k.recSize && bytes.Equal(h, k.header())
}

// file is what a journal does to its open file; tests wrap it to fail.
type file interface {
	Write(p []byte) (int, error)
	Truncate(size int64) error
	Sync() error
}

// journal is the durability discipline both stores share: an append-only
// file of sealed fixed-size records, opened O_APPEND and O_NOFOLLOW and
// locked (flock LOCK_EX) for the journal's lifetime. A record is written
// with one write(2); a failed or short write is undone with ftruncate to
// the last good length, and if that fails too the journal is broken: every
// later append is refused until restart. Before each append an fstat
// checks that the file is still linked and at the length the journal left
// it, and at every sync tick an lstat also checks that the path still names
// it; if not it is broken too. It is fsynced at most every Sync apart. Rewrites (conversion, compaction, repair) go to a locked
// temporary file that is synced and renamed over the path.
//
// A journal is not safe for concurrent use: its store's mutex guards it.
type journal struct {
	path   string
	k      format
	log    *slog.Logger
	wrap   func(*os.File) file
	noSync bool

	f     *os.File
	fd    int
	io    file   // f, or a test's wrapper of it
	id    fileID // of f
	size  int64  // header and whole records: the length as the journal left it
	dirty bool   // written since the last fsync

	broken  error     // non-nil: refusing until restart
	warned  time.Time // last reminder that the journal is broken
	rescued *os.File  // a restored copy of a vanished file, kept locked

	stop chan struct{}
	done chan struct{}
}

// fileID identifies a file: its device and inode.
type fileID struct{ dev, ino uint64 }

func (j *journal) setFile(f *os.File, id fileID, size int64) {
	j.f, j.fd, j.id, j.size = f, int(f.Fd()), id, size
	j.io = f
	if j.wrap != nil {
		j.io = j.wrap(f)
	}
}

// head returns the file's first record-size bytes (fewer if it is shorter)
// and its length.
func (j *journal) head() ([]byte, int64, error) {
	fi, err := j.f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	h := make([]byte, min(int64(j.k.recSize), fi.Size()))
	if _, err := j.f.ReadAt(h, 0); err != nil {
		return nil, 0, fmt.Errorf("%s %s: read header: %w", j.k.name, j.path, err)
	}
	return h, fi.Size(), nil
}

// content is what a file holds, judged by its first bytes and its length.
type content int

const (
	contentFresh  content = iota // empty, or a header cut short at creation: never held a record
	contentNative                // this format (the header may still fail its checksum)
	contentV1                    // a replay store of format 1
	contentOther                 // a 0.81 hash archive, or a foreign file
)

// classify says what a file of this length starting with h (its first
// record-size bytes, or all of it if shorter) holds.
func (k format) classify(h []byte, size int64) content {
	switch {
	case size < int64(k.recSize) && bytes.HasPrefix(k.header(), h):
		return contentFresh
	case bytes.HasPrefix(h, []byte(k.magic)):
		return contentNative
	case k.magic == replayFormat.magic && bytes.HasPrefix(h, v1Header):
		return contentV1
	}
	return contentOther
}

// initLocked gives a fresh file its header, durably, directory entry
// included.
func (j *journal) initLocked() error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	j.size = 0
	if err := j.appendLocked(j.k.header()); err != nil {
		return err
	}
	return j.syncAllLocked()
}

// syncAllLocked fsyncs the file and its directory.
func (j *journal) syncAllLocked() error {
	if err := j.fsync(j.f); err != nil {
		return fmt.Errorf("%s %s: sync: %w", j.k.name, j.path, err)
	}
	j.dirty = false
	return j.fsyncDir()
}

// truncateTailLocked drops a torn tail at open: bytes after the last record
// that checks, in which no record checks.
func (j *journal) truncateTailLocked(end, size int64) error {
	if end == size {
		j.size = size
		return nil
	}
	j.log.Warn(j.k.name+": dropping a torn tail (a write cut short by a crash, a full disk or a power loss; its knock was refused or never synced)",
		"path", j.path, "bytes", size-end, "at", end)
	if err := j.f.Truncate(end); err != nil {
		return fmt.Errorf("%s %s: truncate torn tail: %w", j.k.name, j.path, err)
	}
	j.size = end
	return j.syncAllLocked()
}

// appendLocked writes p (whole records) at the end of the file with one
// write. On failure the file is restored to its previous length and the
// error wraps ErrWrite; if it cannot be restored the journal breaks.
func (j *journal) appendLocked(p []byte) error {
	if err := j.checkLocked(false); err != nil {
		return err
	}
	n, err := j.io.Write(p)
	if err == nil && n == len(p) {
		j.size += int64(n)
		j.dirty = true
		return nil
	}
	if err == nil {
		err = io.ErrShortWrite
	}
	if terr := j.io.Truncate(j.size); terr != nil {
		return j.failLocked(ErrStoreFailed, fmt.Sprintf(
			"writing %d bytes failed after %d (%v) and restoring the file to its last good length %d failed too (%v)",
			len(p), n, err, j.size, terr))
	}
	return fmt.Errorf("%s %s: %w: %w", j.k.name, j.path, ErrWrite, err)
}

// syncLocked fsyncs written records. A failed fsync breaks the journal:
// the kernel may have dropped the pages it could not write.
func (j *journal) syncLocked() error {
	if !j.dirty || j.broken != nil {
		return j.broken
	}
	if err := j.io.Sync(); err != nil {
		return j.failLocked(ErrStoreFailed, fmt.Sprintf("fsync failed (%v): records written since the last sync may not be on disk", err))
	}
	j.dirty = false
	return nil
}

// failLocked breaks the journal: every later append returns the error. It
// logs once; when the file vanished it also puts a copy back at the path
// from the open descriptor, so that a restart does not start afresh.
func (j *journal) failLocked(reason error, what string) error {
	if j.broken != nil {
		return j.broken
	}
	j.broken = fmt.Errorf("%s %s: %w: %s; refusing every knock until doormand restarts", j.k.name, j.path, reason, what)
	j.warned = time.Now()
	j.log.Error(j.k.name+" failed: refusing every knock until doormand restarts", "path", j.path, "err", j.broken)
	return j.broken
}

// checkLocked verifies that the journal's file is intact: still linked,
// at the length the journal left it (one fstat, before every append), and,
// if full or when that fails, still the file its path names (an lstat,
// done by the sync routine at least once a second). If not, it breaks.
//
// The fstat alone notices deletion, replacement by rename (the old file's
// last link goes), truncation and writes by others. Only a file moved
// away while still linked waits for the sync routine; the records written
// meanwhile are in the moved file, and the rescue copies them back.
func (j *journal) checkLocked(full bool) error {
	if j.broken != nil {
		return j.broken
	}
	if j.f == nil {
		return fmt.Errorf("%s %s: %w", j.k.name, j.path, ErrClosed)
	}
	own, nlink, size, err := fstatID(j.fd)
	if err != nil {
		return j.failLocked(ErrStoreFailed, fmt.Sprintf("fstat: %v", err))
	}
	switch {
	case size < j.size:
		return j.failLocked(ErrStoreChanged, fmt.Sprintf("the file shrank from %d to %d bytes (another process truncated it)", j.size, size))
	case size > j.size:
		return j.failLocked(ErrStoreChanged, fmt.Sprintf("the file grew from %d to %d bytes (another process wrote to it)", j.size, size))
	case nlink > 0 && !full:
		return nil
	}
	cur, err := lstatID(j.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		what := "the file was moved away"
		if nlink == 0 {
			what = "the file was deleted"
		}
		err := j.failLocked(ErrStoreChanged, what)
		j.rescueLocked()
		return err
	case err != nil:
		return j.failLocked(ErrStoreChanged, fmt.Sprintf("stat: %v", err))
	case cur != own || own != j.id:
		return j.failLocked(ErrStoreChanged, "another file was put in its place")
	case nlink == 0:
		return j.failLocked(ErrStoreChanged, "the file was deleted")
	}
	return nil
}

// rescueLocked puts a copy of the vanished file back at its path, with no
// replace: if the path is taken again it leaves it alone. The copy stays
// locked until Close, so no other process takes it meanwhile.
func (j *journal) rescueLocked() {
	f, err := createLocked(j.path + ".tmp")
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(j.f, 0, j.size))
		if err == nil {
			err = j.fsync(f)
		}
		if err == nil {
			err = os.Link(j.path+".tmp", j.path)
		}
		os.Remove(j.path + ".tmp")
		if err == nil {
			err = j.fsyncDir()
		}
		if err != nil {
			f.Close()
		}
	}
	if err != nil {
		j.log.Error(j.k.name+": could not put the vanished file back; its records exist only in the open descriptor until doormand exits",
			"path", j.path, "err", err)
		return
	}
	j.rescued = f
	j.log.Error(j.k.name+": put the vanished file back from the open descriptor, so a restart keeps every record",
		"path", j.path, "bytes", j.size)
}

// rewriteLocked replaces the file by the header and what fill writes,
// through a locked temporary file that is synced and renamed over the path.
// fill returns a name to keep the original under (hard link, "" for none).
func (j *journal) rewriteLocked(fill func(w *bufio.Writer) (backup string, err error)) error {
	if err := j.checkLocked(true); err != nil {
		return err
	}
	tmp := j.path + ".tmp"
	f, err := createLocked(tmp)
	if err != nil {
		return fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	fail := func(err error) error {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("%s %s: rewrite: %w", j.k.name, j.path, err)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	w.Write(j.k.header())
	backup, err := fill(w)
	if err != nil {
		return fail(err)
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	if err := j.fsync(f); err != nil {
		return fail(err)
	}
	id, _, size, err := fstatID(int(f.Fd()))
	if err != nil {
		return fail(err)
	}
	if backup != "" {
		if err := os.Link(j.path, backup); err != nil {
			return fail(fmt.Errorf("keep the original: %w (move it away first)", err))
		}
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return fail(err)
	}
	old := j.f
	j.setFile(f, id, size)
	j.dirty = false
	old.Close()
	if err := j.fsyncDir(); err != nil {
		return fmt.Errorf("%s %s: %w", j.k.name, j.path, err)
	}
	return nil
}

// createLocked creates path afresh, without following a link at its name
// and removing a leftover of a crashed rewrite, and locks it. Only a holder
// of the journal's lock writes the temporary file, so a leftover is stale.
func createLocked(path string) (*os.File, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f, err := openNoFollow(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// acquire opens the journal at path, creating an empty file if there is
// none, and locks it. A lock on a file that was meanwhile replaced at the
// path is dropped and the open tried again.
func acquire(path string, k format, opts Options) (*journal, error) {
	j := &journal{path: path, k: k, log: opts.logger(), wrap: opts.wrap, noSync: opts.noSync}
	for range 10 {
		f, err := openNoFollow(path, os.O_RDWR|os.O_APPEND, 0)
		if errors.Is(err, fs.ErrNotExist) {
			f, err = openNoFollow(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", k.name, path, err)
		}
		id, _, size, err := fstatID(int(f.Fd()))
		if err == nil {
			err = lockFile(f)
		}
		if errors.Is(err, ErrLocked) {
			pid := lockHolder(id)
			f.Close()
			return nil, fmt.Errorf("%s: %w", k.name, &LockedError{Path: path, PID: pid, Command: command(pid)})
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("%s %s: %w", k.name, path, err)
		}
		if cur, err := lstatID(path); err != nil || cur != id {
			f.Close() // replaced between open and lock: try again
			continue
		}
		j.setFile(f, id, size)
		return j, nil
	}
	return nil, fmt.Errorf("%s %s: the file kept changing while being opened", k.name, path)
}

// start runs the sync routine: every period (at most a second), with mu
// held, it checks the file, fsyncs it and calls tick.
func (j *journal) start(mu *sync.Mutex, period time.Duration, tick func()) {
	if period <= 0 || period > time.Second {
		period = time.Second
	}
	j.stop, j.done = make(chan struct{}), make(chan struct{})
	go j.routineSync(mu, period, tick)
}

func (j *journal) routineSync(mu *sync.Mutex, period time.Duration, tick func()) {
	defer close(j.done)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		mu.Lock()
		if j.f != nil {
			if j.checkLocked(true) == nil {
				j.syncLocked()
			}
			if j.broken != nil && time.Since(j.warned) >= time.Minute {
				j.warned = time.Now()
				j.log.Error(j.k.name+" still refusing every knock: restart doormand", "path", j.path, "err", j.broken)
			}
			if tick != nil && j.broken == nil {
				tick()
			}
		}
		mu.Unlock()
	}
}

// close stops the sync routine, syncs and closes the file, releasing the
// lock. mu must not be held.
func (j *journal) close(mu *sync.Mutex) error {
	mu.Lock()
	if j.f == nil {
		mu.Unlock()
		return nil
	}
	mu.Unlock()
	if j.stop != nil {
		close(j.stop)
		<-j.done
	}
	mu.Lock()
	defer mu.Unlock()
	var err error
	if j.dirty && j.broken == nil {
		err = j.fsync(j.f)
	}
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	if j.rescued != nil {
		j.rescued.Close()
	}
	if err != nil {
		return fmt.Errorf("%s %s: close: %w", j.k.name, j.path, err)
	}
	return nil
}

// closeNow closes a journal that was never started (a failed open).
func (j *journal) closeNow() {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
}

// fsync and fsyncDir make data and directory entries durable; a fuzz test
// that opens thousands of files turns them off.
func (j *journal) fsync(f *os.File) error {
	if j.noSync {
		return nil
	}
	return f.Sync()
}

func (j *journal) fsyncDir() error {
	if j.noSync {
		return nil
	}
	return syncDir(filepath.Dir(j.path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// span is a stretch of a file: damage found by scan.
type span struct{ off, n int64 }

// scanResult is what scan found.
type scanResult struct {
	end     int64  // end of the last record that checks
	records int    // records that check
	damaged []span // stretches before end in which no record checks (the first few)
	places  int    // how many such stretches
	bytes   int64  // their total length
}

const maxSpans = 8

// scan calls fn with every record of recSize bytes in [start, size) of r
// that checks, in file order. It walks record by record and, past bytes
// that do not check, tries every byte offset, so a record that checks is
// found wherever it lies: after a torn record of an older format, or bytes
// inserted or lost. A record can be skipped only if two 32-bit checksums
// of unrelated bytes happen to match, one of them overlapping it.
func scan(r io.ReaderAt, start, size int64, recSize int, fn func(off int64, rec []byte) error) (scanResult, error) {
	if start > size {
		return scanResult{end: size}, nil // a header cut short: no records
	}
	res := scanResult{end: start}
	buf := make([]byte, max(min(256<<10, size-start), int64(recSize)))
	var bufOff, bufLen int64 = 0, 0
	window := func(pos int64) ([]byte, error) {
		if pos < bufOff || pos+int64(recSize) > bufOff+bufLen {
			n, err := r.ReadAt(buf[:min(int64(len(buf)), size-pos)], pos)
			if err != nil && !(errors.Is(err, io.EOF) && n >= recSize) {
				return nil, err
			}
			bufOff, bufLen = pos, int64(n)
		}
		return buf[pos-bufOff : pos-bufOff+int64(recSize)], nil
	}
	pos, afterHit := start, false
	for pos+int64(recSize) <= size {
		rec, err := window(pos)
		if err != nil {
			return res, err
		}
		if !sealed(rec) {
			if afterHit {
				// Resume right after the last record's start: if that one
				// was a chance match, a real record may begin inside it.
				pos, afterHit = pos-int64(recSize)+1, false
			} else {
				pos++
			}
			continue
		}
		if gap := pos - res.end; gap > 0 {
			if len(res.damaged) < maxSpans {
				res.damaged = append(res.damaged, span{res.end, gap})
			}
			res.places++
			res.bytes += gap
		}
		if err := fn(pos, rec); err != nil {
			return res, err
		}
		res.records++
		pos += int64(recSize)
		res.end, afterHit = max(res.end, pos), true
	}
	return res, nil
}

// describe says where the damage is, for messages.
func (r scanResult) describe() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%d bytes in %d places that fail their checksums (", r.bytes, r.places)
	for i, s := range r.damaged {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%d at byte %d", s.n, s.off)
	}
	if r.places > len(r.damaged) {
		b.WriteString(", ...")
	}
	b.WriteString(")")
	return b.String()
}
