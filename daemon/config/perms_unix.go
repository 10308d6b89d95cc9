//go:build unix

package config

import (
	"io/fs"
	"syscall"
)

// fileOwner returns the uid that owns the file.
func fileOwner(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Uid, true
}

// fileGroup returns the owning group of fi, if the system tells.
func fileGroup(fi fs.FileInfo) (uint32, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, false
	}
	return st.Gid, true
}
