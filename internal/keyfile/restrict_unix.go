//go:build !windows

package keyfile

import "os"

// restrict makes a new key file's mode exactly 0600: the umask may have
// cleared bits but never adds any.
func restrict(f *os.File) error { return f.Chmod(0o600) }
