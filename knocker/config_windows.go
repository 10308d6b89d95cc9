//go:build windows

package knocker

import (
	"fmt"
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

// checkConfigFile accepts any regular file: Windows has no Unix permission
// bits, and its ACLs on the profile directory already keep others out.
func checkConfigFile(f *os.File, path string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: not a regular file", path)
	}
	return nil
}
