//go:build unix

package config

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// OpenStateFile opens a file the daemon writes (log, pid file, firewall
// journal, events file) like os.OpenFile, but never through a symbolic
// link at its name (O_NOFOLLOW) and only if it is a regular file: a FIFO or
// device is refused without blocking the open. The descriptor is
// close-on-exec. A link or a non-regular file gives a *StatePathError.
// Check the directory first with CheckStatePath.
func OpenStateFile(path string, flag int, perm os.FileMode) (*os.File, error) {
	fd, err := unix.Open(path, flag|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK, uint32(perm.Perm()))
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EMLINK) { // EMLINK: FreeBSD's answer to O_NOFOLLOW
		return nil, &StatePathError{Path: path, Problem: "is a symbolic link: doormand writes no file through a link",
			Fix: "point the configuration at the file itself, or remove the link (doormand creates the file)"}
	}
	if errors.Is(err, unix.ENXIO) { // a FIFO without a reader, opened to write; or a device
		if fi, lerr := os.Lstat(path); lerr == nil && !fi.Mode().IsRegular() {
			return nil, &StatePathError{Path: path, Problem: "is not a regular file (" + fileType(fi.Mode()) + ")",
				Fix: "remove it (doormand creates the file)"}
		}
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, &StatePathError{Path: path, Problem: "is not a regular file (" + fileType(unixFileMode(uint32(st.Mode))) + ")",
			Fix: "remove it (doormand creates the file)"}
	}
	if flag&unix.O_NONBLOCK == 0 {
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, &os.PathError{Op: "fcntl", Path: path, Err: err}
		}
	}
	f := os.NewFile(uintptr(fd), path)
	return f, nil
}

// unixFileMode converts the type bits of st_mode for fileType.
func unixFileMode(m uint32) os.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFDIR:
		return os.ModeDir
	case unix.S_IFIFO:
		return os.ModeNamedPipe
	case unix.S_IFSOCK:
		return os.ModeSocket
	case unix.S_IFCHR, unix.S_IFBLK:
		return os.ModeDevice
	case unix.S_IFLNK:
		return os.ModeSymlink
	}
	return os.ModeIrregular
}
