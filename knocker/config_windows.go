//go:build windows

package knocker

import (
	"os"
	"path/filepath"
)

// DefaultConfigPath returns the client's configuration file,
// %USERPROFILE%\knock.cfg as in 0.81, or "" when USERPROFILE is not set.
func DefaultConfigPath() string {
	home := os.Getenv("USERPROFILE")
	if home == "" {
		return ""
	}
	return filepath.Join(home, "knock.cfg")
}

// checkPrivate accepts the file: Windows has no Unix permission bits,
// and its ACLs on the profile directory already keep others out.
func checkPrivate(os.FileInfo, string) error { return nil }
