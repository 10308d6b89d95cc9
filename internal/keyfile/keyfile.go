// Package keyfile writes private key files, the one step doormand keygen
// and knock keygen share (MODERN-12.2/2). Reading stays with each program:
// their ownership rules differ (MODERN-12.21, MODERN-12.22).
package keyfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/doorman-project/doorman/protocol"
)

// ErrExists is wrapped by Write's error when the file exists.
var ErrExists = errors.New("already exists; a key is never overwritten: move it away first if you mean to replace it")

// Write creates path holding key in WireGuard's text form and a newline,
// readable by its owner only (mode 0600 on Unix, whatever the umask). It
// never replaces an existing file (the error wraps ErrExists): the old key
// may be the only copy, and other configurations name its public key. The
// file is synced before Write returns; on any error it is removed.
func Write(path string, key *protocol.PrivateKey) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("private key %s %w", path, ErrExists)
		}
		return fmt.Errorf("private key: %w", err)
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("private key %s: %w", path, cerr)
		}
		if err != nil {
			os.Remove(path)
		}
	}()
	if err := restrict(f); err != nil {
		return fmt.Errorf("private key %s: %w", path, err)
	}
	text := []byte(key.Base64() + "\n")
	defer clear(text)
	if _, err := f.Write(text); err != nil {
		return fmt.Errorf("private key %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("private key %s: %w", path, err)
	}
	return nil
}
