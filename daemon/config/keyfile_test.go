//go:build unix

package config

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

const rfc7748AlicePriv = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="

// TestWriteLoadPrivateKey: a written key reads back, mode 0600 whatever
// the umask, and is never overwritten (MODERN-12.2/2, MODERN-12.21).
func TestWriteLoadPrivateKey(t *testing.T) {
	old := syscall.Umask(0)
	t.Cleanup(func() { syscall.Umask(old) })
	p := filepath.Join(t.TempDir(), "doormand.key")
	k, err := protocol.NewPrivateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := WritePrivateKey(p, &k); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v (%v)", fi.Mode(), err)
	}
	data, _ := os.ReadFile(p)
	if string(data) != k.Base64()+"\n" {
		t.Fatalf("file holds %q", data)
	}
	got, err := LoadPrivateKey(p, false)
	if err != nil || got != k {
		t.Fatalf("LoadPrivateKey: %v", err)
	}
	other, _ := protocol.NewPrivateKey(rand.Reader)
	if err := WritePrivateKey(p, &other); !errors.Is(err, ErrKeyExists) {
		t.Fatalf("overwrite: %v", err)
	}
	if again, _ := LoadPrivateKey(p, false); again != k {
		t.Fatal("the existing key changed")
	}
	if err := WritePrivateKey(filepath.Join(t.TempDir(), "no", "such", "dir"), &k); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

// TestLoadPrivateKeyPerms: with the checks on (doormand without -D) the key
// file must be root's with no group or other bits, and the error names
// the fix (MODERN-12.21).
func TestLoadPrivateKeyPerms(t *testing.T) {
	needRoot(t)
	dir := t.TempDir()
	p := writeFile(t, dir, "doormand.key", rfc7748AlicePriv+"\n", 0o640, 0)
	_, err := LoadPrivateKey(p, true)
	var pe *PermError
	if !errors.As(err, &pe) || pe.Kind != KindPrivateKey || pe.Fix != "chown root:root "+p+" && chmod 600 "+p {
		t.Fatalf("0640 key: %v", err)
	}
	if !strings.HasPrefix(err.Error(), "private key "+p+": mode 0640 lets group read it") {
		t.Errorf("message: %v", err)
	}
	if _, err := LoadPrivateKey(p, false); err != nil {
		t.Fatalf("-D: %v", err)
	}
	os.Chmod(p, 0o600)
	os.Chown(p, 65534, -1)
	if _, err := LoadPrivateKey(p, true); !errors.Is(err, ErrInsecure) || !strings.Contains(err.Error(), "owned by uid 65534") {
		t.Fatalf("nobody's key: %v", err)
	}
	os.Chown(p, 0, -1)
	k, err := LoadPrivateKey(p, true)
	if err != nil || k.Public().String() != "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=" {
		t.Fatalf("good key: %v", err)
	}
}

// TestLoadPrivateKeyErrors: errors name the file and line and never show
// the key (MODERN-12.2).
func TestLoadPrivateKeyErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct{ name, content, want string }{
		{"empty", "", ": private key: no key in the file"},
		{"two keys", rfc7748AlicePriv + "\n" + rfc7748AlicePriv + "\n", ":2: private key: a second key; a key file holds one key"},
		{"truncated", "# key\n" + rfc7748AlicePriv[:40] + "\n", ":2: private key: not a key: want 44 characters of base64 (as wg genkey, wg pubkey, knock keygen and doormand keygen print); got 40 characters"},
		{"zero", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n", ": private key: private key is all zero bytes"},
	} {
		p := filepath.Join(dir, c.name)
		os.WriteFile(p, []byte(c.content), 0o600)
		_, err := LoadPrivateKey(p, false)
		var e *Error
		if !errors.As(err, &e) || err.Error() != p+c.want {
			t.Errorf("%s: %v\nwant %s%s", c.name, err, p, c.want)
		}
		if err != nil && strings.Contains(err.Error(), rfc7748AlicePriv[:20]) {
			t.Errorf("%s: error shows the key", c.name)
		}
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "missing"), true); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
