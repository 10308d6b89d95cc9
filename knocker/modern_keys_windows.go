//go:build windows

package knocker

import (
	"os"
	"path/filepath"
)

// DefaultKeyPath returns the knocker's private key file,
// %USERPROFILE%\knock.key, or "" when USERPROFILE is not set.
func DefaultKeyPath() string {
	home := os.Getenv("USERPROFILE")
	if home == "" {
		return ""
	}
	return filepath.Join(home, "knock.key")
}

// checkKeyPerm accepts the file: Windows has no Unix permission bits, and
// the ACLs of the profile directory keep others out.
func checkKeyPerm(os.FileInfo, string) error { return nil }
