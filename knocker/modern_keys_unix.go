//go:build !windows

package knocker

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultKeyPath returns the knocker's private key file, ~/.knock.key, or ""
// when the home directory is unknown.
func DefaultKeyPath() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".knock.key")
}

// checkKeyPerm refuses a key file anyone but its owner may access.
func checkKeyPerm(fi os.FileInfo, path string) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: %w (mode %04o); fix with: chmod 600 %s", path, ErrKeyPerm, perm, path)
	}
	return nil
}
