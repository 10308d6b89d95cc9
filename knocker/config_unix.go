//go:build !windows

package knocker

import (
	"fmt"
	"os"
	"path/filepath"
)

// DefaultConfigPath returns the client's configuration file, ~/.knockcf, or
// "" when the home directory is unknown.
func DefaultConfigPath() string {
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		return ""
	}
	return filepath.Join(home, ".knockcf")
}

// checkPrivate refuses a file that anyone but its owner may access: it
// holds a secret (CLASSIC-10.3).
func checkPrivate(fi os.FileInfo, path string) error {
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: %w (mode %04o); fix with: chmod 600 %s", path, ErrConfigPerm, perm, path)
	}
	return nil
}
