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
)

// needRoot skips tests that must create root-owned files or chown them.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create root-owned files and chown them (CI runs as root)")
	}
}

func writeFile(t *testing.T, dir, name, content string, mode fs.FileMode, uid int) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
	if uid >= 0 {
		if err := os.Chown(p, uid, -1); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// CLASSIC-8.6, CLASSIC-9.5: ownership and mode rules per kind.
func TestCheckOwner(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	tests := []struct {
		name    string
		kind    FileKind
		mode    fs.FileMode
		uid     int
		problem string // "" = accepted
		fix     string
	}{
		{"guest list 0600", KindGuestList, 0o600, 0, "", ""},
		{"guest list 0400", KindGuestList, 0o400, 0, "", ""},
		{"guest list 0644", KindGuestList, 0o644, 0, "mode 0644 lets group and others read it", "chown root:root P && chmod 600 P"},
		{"guest list 0640", KindGuestList, 0o640, 0, "mode 0640 lets group read it", "chown root:root P && chmod 600 P"},
		{"guest list 0602", KindGuestList, 0o602, 0, "mode 0602 lets others write it", "chown root:root P && chmod 600 P"},
		{"guest list 0677", KindGuestList, 0o677, 0, "mode 0677 lets group and others read and write and execute it", "chown root:root P && chmod 600 P"},
		{"guest list nobody", KindGuestList, 0o600, 65534, "owned by uid 65534, not root", "chown root:root P"},
		{"guest list nobody 0644", KindGuestList, 0o644, 65534, "owned by uid 65534, not root; mode 0644 lets group and others read it", "chown root:root P && chmod 600 P"},
		{"config 0644", KindConfig, 0o644, 0, "", ""},
		{"config 0600", KindConfig, 0o600, 0, "", ""},
		{"config 0664", KindConfig, 0o664, 0, "mode 0664 lets group write it", "chmod go-w P"},
		{"config 0646", KindConfig, 0o646, 0, "mode 0646 lets others write it", "chmod go-w P"},
		{"config nobody", KindConfig, 0o644, 65534, "owned by uid 65534, not root", "chown root:root P"},
		{"script 0700", KindScript, 0o700, 0, "", ""},
		{"script 0750", KindScript, 0o750, 0, "", ""},
		{"script 0754", KindScript, 0o754, 0, "", ""},
		{"script 0755", KindScript, 0o755, 0, "mode 0755 lets others execute it", "chmod go-w,o-x P"},
		{"script 0775", KindScript, 0o775, 0, "mode 0775 lets group and others write and execute it", "chmod go-w,o-x P"},
		{"script 0644", KindScript, 0o644, 0, "mode 0644 does not let its owner execute it", "chmod u+x P"},
		{"script nobody 0757", KindScript, 0o757, 65534, "owned by uid 65534, not root; mode 0757 lets others write and execute it", "chown root:root P && chmod go-w,o-x P"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, dir, "f"+string(rune('a'+i)), "x", tc.mode, tc.uid)
			err := CheckOwner(p, tc.kind)
			if tc.problem == "" {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			var pe *PermError
			if !errors.As(err, &pe) || !errors.Is(err, ErrInsecure) {
				t.Fatalf("got %v, want a *PermError", err)
			}
			want := tc.kind.String() + " " + p + ": " + tc.problem + "; fix: " + strings.ReplaceAll(tc.fix, "P", p) +
				" (or run doormand -D to skip this check)"
			if err.Error() != want {
				t.Errorf("got  %s\nwant %s", err, want)
			}
		})
	}
}

func TestCheckOwnerNotRegular(t *testing.T) {
	dir := t.TempDir()
	err := CheckOwner(dir, KindGuestList)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "not a regular file (a directory)") {
		t.Errorf("directory: %v", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	// Loading must refuse a FIFO before open could block on it.
	if _, _, err := LoadGuestList(fifo, true, StaticResolver{}); !errors.Is(err, ErrInsecure) ||
		!strings.Contains(err.Error(), "a named pipe") {
		t.Errorf("fifo: %v", err)
	}
}

func TestCheckOwnerMissing(t *testing.T) {
	p := filepath.Join(t.TempDir(), "dd_guestlist")
	for _, err := range []error{
		CheckOwner(p, KindGuestList),
		func() error { _, _, err := LoadGuestList(p, true, nil); return err }(),
		func() error { _, _, err := LoadGuestList(p, false, nil); return err }(),
	} {
		if !errors.Is(err, fs.ErrNotExist) || err.Error() != "guest list "+p+" does not exist: file does not exist" {
			t.Errorf("got %v", err)
		}
	}
	_, _, err := LoadDaemon(p+".cf", false)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "config file "+p+".cf") {
		t.Errorf("got %v", err)
	}
}

func TestShellQuoteInFix(t *testing.T) {
	needRoot(t)
	p := writeFile(t, t.TempDir(), "my guests", "x", 0o644, 0)
	err := CheckOwner(p, KindGuestList)
	if err == nil || !strings.Contains(err.Error(), "chmod 600 '"+p+"'") {
		t.Errorf("got %v", err)
	}
}

// CLASSIC-8.6, CLASSIC-9.5: Load* check what they read unless -D.
func TestLoadWithPerms(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	add := writeFile(t, dir, "iptables-add", "#!/bin/sh\necho 0\n", 0o700, 0)
	del := writeFile(t, dir, "iptables-del", "#!/bin/sh\necho 0\n", 0o755, 0)
	cf := writeFile(t, dir, "doormand.cf", "interface eth0\nfirewall-add "+add+"\nfirewall-del "+del+"\n", 0o644, 0)

	_, _, err := LoadDaemon(cf, true)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "firewall script "+del+": mode 0755 lets others execute it") {
		t.Fatalf("0755 script: %v", err)
	}
	if d, _, err := LoadDaemon(cf, false); err != nil || d.FirewallDel != del {
		t.Fatalf("-D: %v", err)
	}
	if err := os.Chmod(del, 0o750); err != nil {
		t.Fatal(err)
	}
	d, _, err := LoadDaemon(cf, true)
	if err != nil || d.Firewall != FirewallScript || d.FirewallAdd != add {
		t.Fatalf("good files: %+v %v", d, err)
	}
	if err := os.Chown(cf, 65534, -1); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadDaemon(cf, true); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("nobody's config: %v", err)
	}

	gl := writeFile(t, dir, "dd_guestlist", "alice s3cretKnock ssh 198.18.0.0/24\n", 0o644, 0)
	if _, _, err := LoadGuestList(gl, true, StaticResolver{}); !errors.Is(err, ErrInsecure) {
		t.Fatalf("0644 guest list: %v", err)
	}
	if g, _, err := LoadGuestList(gl, false, StaticResolver{}); err != nil || len(g) != 1 {
		t.Fatalf("-D guest list: %v", err)
	}
	if err := os.Chmod(gl, 0o600); err != nil {
		t.Fatal(err)
	}
	g, _, err := LoadGuestList(gl, true, StaticResolver{})
	if err != nil || len(g) != 1 || g[0].Name != "alice" {
		t.Fatalf("good guest list: %v %v", g, err)
	}
	// Errors carry the path as the file name.
	bad := writeFile(t, dir, "bad", "alice s3cretKnock ssh\n", 0o600, 0)
	if _, _, err := LoadGuestList(bad, true, StaticResolver{}); err == nil || !strings.HasPrefix(err.Error(), bad+":1: ") {
		t.Fatalf("bad guest list: %v", err)
	}

	// A symbolic link is judged by the file it points to.
	link := filepath.Join(dir, "link")
	if err := os.Symlink(gl, link); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadGuestList(link, true, StaticResolver{}); err != nil {
		t.Fatalf("symlink to good list: %v", err)
	}
}

func TestLoadTooLarge(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(maxFileSize + 1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if _, _, err := LoadGuestList(p, false, nil); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v", err)
	}
}

// Without root the files a test creates belong to the test's user, which
// CheckOwner must refuse whatever the mode.
func TestCheckOwnerNonRootOwner(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("covered by TestCheckOwner when running as root")
	}
	p := writeFile(t, t.TempDir(), "dd_guestlist", "x", 0o600, -1)
	err := CheckOwner(p, KindGuestList)
	if !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "not root; fix: chown root:root "+p) {
		t.Errorf("got %v", err)
	}
}
