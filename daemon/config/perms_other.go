//go:build !unix

package config

import "io/fs"

// fileOwner cannot tell the owner on this system, so CheckOwner fails closed
// and the daemon must be run with -D.
func fileOwner(fs.FileInfo) (uint32, bool) { return 0, false }

func fileGroup(fs.FileInfo) (uint32, bool) { return 0, false }
