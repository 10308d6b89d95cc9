package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// StatePathError reports a state file (the replay store, log, pid file,
// firewall journal, events file) that the daemon must not write where it
// is: its directory lets another user replace it, or the file itself is a
// link, not a regular file, or writable by others. It wraps ErrInsecure.
// Unlike a PermError it is not skipped by doormand -D: a directory others
// can write is as dangerous in a debug run, and a developer's own
// directory passes (see CheckStatePath).
type StatePathError struct {
	Path    string // the state file
	Dir     string // its directory, when the directory is at fault
	Problem string // what is wrong
	Fix     string // how to fix it
}

// Error reads like "state file /tmp/doorman.pid: directory /tmp has mode
// 1777: every user can create files in it, and plant a link at the file's
// name; fix: keep state in a directory only root can write, e.g.
// /var/lib/doorman (mkdir -m 755 /var/lib/doorman)".
func (e *StatePathError) Error() string {
	s := "state file " + e.Path + ": "
	if e.Dir != "" {
		s += "directory " + e.Dir + " "
	}
	s += e.Problem
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s
}

// Unwrap returns ErrInsecure.
func (e *StatePathError) Unwrap() error { return ErrInsecure }

// CheckStatePath refuses a path the daemon is to write state to unless
// nobody but root (or the user doormand runs as) can replace the file:
//   - its directory must be owned by root or by the effective user, and
//     not writable by others, nor by a group other than a system group
//     (gid below 1000, as Ubuntu's /var/log is root:syslog 0775); a sticky
//     world-writable directory such as /tmp is refused too: anyone can
//     create the file's name first, as a link or a FIFO;
//   - if the file exists it must be a regular file, not a symbolic link,
//     owned by root or the effective user, not writable by group or others.
//
// Only the parent directory is judged, not its ancestors. Open the file
// with OpenStateFile, which never follows a link at its name, so that a
// change made after the check cannot redirect the write either.
//
// doormand -D does not skip this check: running as a developer in one's
// own directory passes it, and t.TempDir() does in tests. A missing
// directory gives an error wrapping fs.ErrNotExist; other failures are
// *StatePathError values wrapping ErrInsecure.
func CheckStatePath(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	dir := filepath.Dir(abs)
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("state file %s: directory %s does not exist: %w", path, dir, fs.ErrNotExist)
		}
		return fmt.Errorf("state file %s: %w", path, err)
	}
	if !fi.IsDir() {
		return &StatePathError{Path: path, Dir: dir, Problem: "is not a directory (" + fileType(fi.Mode()) + ")"}
	}
	qdir := shellQuote(dir)
	var problems, fix []string
	uid, ok := fileOwner(fi)
	switch {
	case !ok:
		return &StatePathError{Path: path, Dir: dir, Problem: "ownership cannot be checked on this system"}
	case !trustedOwner(uid):
		problems = append(problems, fmt.Sprintf("is owned by uid %d, not root: that user can replace the files in it", uid))
		fix = append(fix, "chown root "+qdir)
	}
	mode := fi.Mode().Perm()
	if fi.Mode()&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	switch {
	case mode&0o1002 == 0o1002:
		return &StatePathError{Path: path, Dir: dir,
			Problem: fmt.Sprintf("has mode %04o: every user can create files in it, and plant a link at the file's name", mode),
			Fix:     "keep state in a directory only root can write, e.g. /var/lib/doorman (mkdir -m 755 /var/lib/doorman)"}
	case mode&0o022 != 0 && !systemGroupOnly(fi, mode):
		problems = append(problems, fmt.Sprintf("has mode %04o: %s the files in it", mode,
			strings.Replace(describe(mode&0o022), "write it", "can replace", 1)))
		fix = append(fix, "chmod go-w "+qdir)
	}
	if len(problems) > 0 {
		return &StatePathError{Path: path, Dir: dir, Problem: strings.Join(problems, "; "), Fix: strings.Join(fix, " && ")}
	}

	fi, err = os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil // the daemon creates it
	case err != nil:
		return fmt.Errorf("state file %s: %w", path, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return &StatePathError{Path: path, Problem: "is a symbolic link: doormand writes no file through a link",
			Fix: "point the configuration at the file itself, or remove the link (doormand creates the file)"}
	case !fi.Mode().IsRegular():
		return &StatePathError{Path: path, Problem: "is not a regular file (" + fileType(fi.Mode()) + ")",
			Fix: "remove it (doormand creates the file)"}
	}
	qpath := shellQuote(path)
	if uid, ok := fileOwner(fi); !ok || !trustedOwner(uid) {
		problems = append(problems, fmt.Sprintf("is owned by uid %d, not root", uid))
		fix = append(fix, "chown root "+qpath)
	}
	if perm := fi.Mode().Perm(); perm&0o022 != 0 {
		problems = append(problems, fmt.Sprintf("mode %04o lets %s", perm, describe(perm&0o022)))
		fix = append(fix, "chmod go-w "+qpath)
	}
	if len(problems) > 0 {
		return &StatePathError{Path: path, Problem: strings.Join(problems, "; "), Fix: strings.Join(fix, " && ")}
	}
	return nil
}

// systemGroupOnly reports whether a directory's only extra writer is a
// system group (gid below 1000: syslog, adm), as with Ubuntu's /var/log
// (root:syslog 0775). Its members are system services the admin chose; and
// a link they plant is not followed (OpenStateFile), nor can they hard-link
// files they do not own (fs.protected_hardlinks).
func systemGroupOnly(fi fs.FileInfo, mode fs.FileMode) bool {
	gid, ok := fileGroup(fi)
	return ok && mode&0o002 == 0 && gid < 1000
}

// trustedOwner reports whether a file owned by uid can be trusted: root's,
// or the effective user's own (doormand run by a developer).
func trustedOwner(uid uint32) bool {
	return uid == 0 || int64(uid) == int64(os.Geteuid())
}
