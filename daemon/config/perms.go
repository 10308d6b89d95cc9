package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// FileKind says which of the daemon's files a path is; the ownership rules
// differ per kind (CLASSIC-8.6, CLASSIC-9.5).
type FileKind int

// The kinds of file CheckOwner knows.
const (
	KindConfig     FileKind = iota + 1 // doormand.cf: root-owned, not group/other writable
	KindGuestList                      // guest list: root-owned, no group/other bits at all
	KindScript                         // firewall-add/-del: root-owned, not group/other writable, not other executable, owner executable
	KindPrivateKey                     // the doorman's private key (MODERN-12.21): as a guest list
)

// String names the kind as messages do.
func (k FileKind) String() string {
	switch k {
	case KindConfig:
		return "config file"
	case KindGuestList:
		return "guest list"
	case KindScript:
		return "firewall script"
	case KindPrivateKey:
		return "private key"
	}
	return fmt.Sprintf("FileKind(%d)", int(k))
}

// ErrInsecure is wrapped by every *PermError.
var ErrInsecure = errors.New("insecure file ownership or permissions")

// PermError reports a file whose type, owner or mode breaks the rules for
// its kind, and says how to fix it.
type PermError struct {
	Path    string
	Kind    FileKind
	Problem string // what is wrong, e.g. "mode 0644 lets group and others read it"
	Fix     string // a shell command that fixes it
}

// Error reads like "guest list /etc/dd_guestlist: mode 0644 lets group and
// others read it; fix: chown root:root /etc/dd_guestlist && chmod 600
// /etc/dd_guestlist (or run doormand -D to skip this check)".
func (e *PermError) Error() string {
	s := e.Kind.String() + " " + e.Path + ": " + e.Problem
	if e.Fix != "" {
		s += "; fix: " + e.Fix
	}
	return s + " (or run doormand -D to skip this check)"
}

// Unwrap returns ErrInsecure.
func (e *PermError) Unwrap() error { return ErrInsecure }

// CheckOwner applies Doorman 0.81's ownership rules (skipped by doormand -D)
// to the file at path, following symbolic links: it must be a regular file
// owned by root, and
//   - a guest list (it holds secrets) and a private key have no group or
//     other permission bits;
//   - a config file is not writable by group or others;
//   - a firewall script is not writable by group or others, not executable
//     by others, and executable by its owner.
//
// A missing file gives an error wrapping fs.ErrNotExist that names the path.
// Other failures are *PermError values wrapping ErrInsecure.
func CheckOwner(path string, kind FileKind) error {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%s %s does not exist: %w", kind, path, fs.ErrNotExist)
		}
		return fmt.Errorf("%s %s: %w", kind, path, err)
	}
	return checkInfo(path, kind, fi)
}

// checkInfo is CheckOwner on a FileInfo the caller already has, typically
// from the open file so that what is checked is what is read.
func checkInfo(path string, kind FileKind, fi fs.FileInfo) error {
	quoted := shellQuote(path)
	perm := fi.Mode().Perm()
	var problems []string
	var fix []string
	if !fi.Mode().IsRegular() {
		return &PermError{Path: path, Kind: kind,
			Problem: "not a regular file (" + fileType(fi.Mode()) + ")",
			Fix:     "point the configuration at a regular file"}
	}
	uid, ok := fileOwner(fi)
	switch {
	case !ok:
		return &PermError{Path: path, Kind: kind, Problem: "file ownership cannot be checked on this system"}
	case uid != 0:
		problems = append(problems, fmt.Sprintf("owned by uid %d, not root", uid))
		fix = append(fix, "chown root:root "+quoted)
	}
	switch kind {
	case KindGuestList, KindPrivateKey:
		if perm&0o077 != 0 {
			problems = append(problems, fmt.Sprintf("mode %04o lets %s", perm, describe(perm&0o077)))
			fix = append(fix, "chmod 600 "+quoted)
		}
	case KindConfig:
		if perm&0o022 != 0 {
			problems = append(problems, fmt.Sprintf("mode %04o lets %s", perm, describe(perm&0o022)))
			fix = append(fix, "chmod go-w "+quoted)
		}
	case KindScript:
		var chmod []string
		if perm&0o023 != 0 {
			problems = append(problems, fmt.Sprintf("mode %04o lets %s", perm, describe(perm&0o023)))
			chmod = append(chmod, "go-w,o-x")
		}
		if perm&0o100 == 0 {
			problems = append(problems, fmt.Sprintf("mode %04o does not let its owner execute it", perm))
			chmod = append(chmod, "u+x")
		}
		if len(chmod) > 0 {
			fix = append(fix, "chmod "+strings.Join(chmod, ",")+" "+quoted)
		}
	default:
		return fmt.Errorf("config: CheckOwner: unknown %v", kind)
	}
	if len(problems) == 0 {
		return nil
	}
	if (kind == KindGuestList || kind == KindPrivateKey) && len(fix) == 1 && uid == 0 {
		// Keep the documented one-liner even when only the mode is wrong.
		fix = []string{"chown root:root " + quoted, fix[0]}
	}
	return &PermError{Path: path, Kind: kind,
		Problem: strings.Join(problems, "; "),
		Fix:     strings.Join(fix, " && ")}
}

// describe says who may do what for permission bits within 0o077.
func describe(bits fs.FileMode) string {
	var who []string
	if bits&0o070 != 0 {
		who = append(who, "group")
	}
	if bits&0o007 != 0 {
		who = append(who, "others")
	}
	var what []string
	if bits&0o044 != 0 {
		what = append(what, "read")
	}
	if bits&0o022 != 0 {
		what = append(what, "write")
	}
	if bits&0o011 != 0 {
		what = append(what, "execute")
	}
	return strings.Join(who, " and ") + " " + strings.Join(what, " and ") + " it"
}

func fileType(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not regular"
}

// shellQuote quotes a path for a copy-and-paste fix command when it needs it.
func shellQuote(s string) string {
	safe := s != ""
	for i := 0; i < len(s) && safe; i++ {
		c := s[i]
		safe = isLetter(c) || isDigit(c) || strings.IndexByte("/._-+,:@%", c) >= 0
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
