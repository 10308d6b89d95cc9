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

// checkConfigFile refuses anything but a regular file that only its owner
// may access: it holds a secret.
func checkConfigFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%s: %w (mode %04o); fix with: chmod 600 %s", path, ErrConfigPerm, perm, path)
	}
	return nil
}
