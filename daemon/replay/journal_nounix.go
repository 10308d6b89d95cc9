//go:build !unix

package replay

import (
	"errors"
	"os"
)

var errUnsupported = errors.New("the replay store needs a Unix system")

func openNoFollow(string, int, os.FileMode) (*os.File, error) { return nil, errUnsupported }
func lockFile(*os.File) error                                 { return errUnsupported }
func fstatID(int) (fileID, uint64, int64, error)              { return fileID{}, 0, 0, errUnsupported }
func lstatID(string) (fileID, error)                          { return fileID{}, errUnsupported }
