//go:build !windows

package keyfile

import (
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

func TestWrite(t *testing.T) {
	k, err := protocol.NewPrivateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "key")
	old := syscall.Umask(0) // the mode must not depend on it
	defer syscall.Umask(old)
	if err := Write(p, &k); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != k.Base64()+"\n" {
		t.Fatalf("file holds %q, want the key's text and a newline", data)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %04o with umask 0, want 0600", fi.Mode().Perm())
	}
	other, _ := protocol.NewPrivateKey(rand.Reader)
	if err := Write(p, &other); !errors.Is(err, ErrExists) {
		t.Fatalf("second Write: %v, want ErrExists", err)
	}
	if again, _ := os.ReadFile(p); string(again) != string(data) {
		t.Fatal("second Write changed the existing key")
	}
	if err := Write(filepath.Join(t.TempDir(), "missing", "key"), &k); err == nil {
		t.Fatal("Write into a missing directory succeeded")
	}
}
