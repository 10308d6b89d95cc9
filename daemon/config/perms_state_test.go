//go:build unix

package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mkdir makes a directory with exactly mode and, if uid >= 0, that owner.
func mkdir(t *testing.T, parent, name string, mode fs.FileMode, uid int) string {
	t.Helper()
	d := filepath.Join(parent, name)
	if err := os.Mkdir(d, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d, mode); err != nil {
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(d, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// userGroup is a group id above the system range, as a user's group is.
const userGroup = 2000

func chgrp(t *testing.T, d string, gid int) {
	t.Helper()
	if err := os.Chown(d, -1, gid); err != nil {
		t.Fatal(err)
	}
}

// TestCheckStatePath: state files live only where no other user can
// replace them (the audit's 1777 directory holding attacker links,
// CLASSIC-5.8).
func TestCheckStatePath(t *testing.T) {
	root := t.TempDir() // owned by the test's user, 0700: trusted
	me := os.Geteuid()
	tests := []struct {
		name    string
		mode    fs.FileMode
		uid     int
		asRoot  bool   // needs root to set the owner and group
		problem string // "" = accepted
		fix     string
		gid     int // -1 = the creator's
	}{
		{"0755", 0o755, -1, false, "", "", -1},
		{"0700", 0o700, -1, false, "", "", -1},
		// A user's group may write: refused.
		{"0775", 0o775, -1, true, "has mode 0775: group can replace the files in it", "chmod go-w D", userGroup},
		// A system group may (Ubuntu's /var/log is root:syslog 0775).
		{"0775 system group", 0o775, -1, true, "", "", 4},
		{"0757", 0o757, -1, false, "has mode 0757: others can replace the files in it", "chmod go-w D", -1},
		{"1777", 0o777 | fs.ModeSticky, -1, false, "has mode 1777: every user can create files in it, and plant a link at the file's name",
			"keep state in a directory only root can write, e.g. /var/lib/doorman (mkdir -m 755 /var/lib/doorman)", -1},
		{"nobody", 0o755, 65534, true, "is owned by uid 65534, not root: that user can replace the files in it", "chown root D", -1},
		{"nobody 0775", 0o775, 65534, true, "is owned by uid 65534, not root: that user can replace the files in it; has mode 0775: group can replace the files in it",
			"chown root D && chmod go-w D", userGroup},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.asRoot && me != 0 {
				t.Skip("needs root to chown (CI runs as root)")
			}
			d := mkdir(t, root, string(rune('a'+i)), tc.mode, tc.uid)
			if tc.gid >= 0 {
				chgrp(t, d, tc.gid)
			}
			p := filepath.Join(d, "replay")
			err := CheckStatePath(p)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			var se *StatePathError
			if !errors.As(err, &se) || !errors.Is(err, ErrInsecure) {
				t.Fatalf("got %v, want a *StatePathError", err)
			}
			if se.Dir != d || se.Problem != tc.problem || se.Fix != strings.ReplaceAll(tc.fix, "D", d) {
				t.Errorf("got  dir %q problem %q fix %q\nwant dir %q problem %q fix %q", se.Dir, se.Problem, se.Fix,
					d, tc.problem, strings.ReplaceAll(tc.fix, "D", d))
			}
		})
	}
}

// TestCheckStatePathFile judges an existing state file itself
// (CLASSIC-5.8).
func TestCheckStatePathFile(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	os.WriteFile(target, nil, 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(target, link)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	loose := filepath.Join(dir, "loose")
	os.WriteFile(loose, nil, 0o600)
	os.Chmod(loose, 0o666)
	for _, c := range []struct{ path, problem string }{
		{target, ""},
		{filepath.Join(dir, "missing"), ""},
		{link, "is a symbolic link: doormand writes no file through a link"},
		{fifo, "is not a regular file (a named pipe)"},
		{loose, "mode 0666 lets group and others write it"},
	} {
		err := CheckStatePath(c.path)
		var se *StatePathError
		switch {
		case c.problem == "" && err != nil:
			t.Errorf("%s refused: %v", c.path, err)
		case c.problem != "" && (!errors.As(err, &se) || se.Problem != c.problem || se.Dir != ""):
			t.Errorf("%s: got %v, want problem %q", c.path, err, c.problem)
		}
	}
	if err := CheckStatePath(filepath.Join(dir, "no", "file")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing directory: %v", err)
	}
}

// TestOpenStateFile: no write through a link, no open of a FIFO (and no
// blocking on one), and otherwise os.OpenFile (CLASSIC-5.8).
func TestOpenStateFile(t *testing.T) {
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("precious"), 0o600)
	link := filepath.Join(dir, "doormand.pid")
	os.Symlink(victim, link)
	fifo := filepath.Join(dir, "events")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	for _, c := range []struct{ path, problem string }{
		{link, "is a symbolic link: doormand writes no file through a link"},
		{fifo, "is not a regular file (a named pipe)"},
		{dir, ""}, // a directory: open fails (EISDIR)
	} {
		done := make(chan error, 1)
		go func() {
			f, err := OpenStateFile(c.path, flag, 0o600)
			if f != nil {
				f.Close()
			}
			done <- err
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("OpenStateFile(%s) blocked", c.path)
		}
		var se *StatePathError
		if err == nil || (c.problem != "" && (!errors.As(err, &se) || se.Problem != c.problem)) {
			t.Errorf("OpenStateFile(%s) = %v, want problem %q", c.path, err, c.problem)
		}
	}
	if b, _ := os.ReadFile(victim); string(b) != "precious" {
		t.Fatalf("link target written: %q", b)
	}
	p := filepath.Join(dir, "log")
	f, err := OpenStateFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("hello\n")
	f.Close()
	if b, _ := os.ReadFile(p); string(b) != "hello\n" {
		t.Fatalf("wrote %q", b)
	}
}
