//go:build windows

package keyfile

import "os"

// restrict leaves the file's ACL as inherited from its directory (a
// profile directory keeps others out); Windows has no Unix mode bits.
func restrict(*os.File) error { return nil }
