//go:build !unix

package config

import (
	"errors"
	"os"
)

// OpenStateFile cannot refuse links on this system, so it refuses to open.
func OpenStateFile(path string, _ int, _ os.FileMode) (*os.File, error) {
	return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("state files need a Unix system")}
}
