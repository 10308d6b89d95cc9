package knocker

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/doorman-project/doorman/internal/keyfile"
	"github.com/doorman-project/doorman/protocol"
)

// ErrKeyPerm: the private key file may be read or written by someone other
// than its owner (MODERN-12.22).
var ErrKeyPerm = errors.New("private key file is accessible to group or others")

// ErrKeyExists is wrapped by WritePrivateKey's error when the file exists.
var ErrKeyExists = keyfile.ErrExists

// maxKeyFile bounds what LoadPrivateKey reads: a key file is one line.
const maxKeyFile = 4096

// LoadPrivateKey reads the knocker's private key file (MODERN-12.2,
// MODERN-12.22): one key in WireGuard's text form, as knock keygen and
// wg genkey write it. On Unix it refuses a file its group or others may
// access in any way (the error wraps ErrKeyPerm and names the fix). Errors
// name the file and line, never the key's text.
func LoadPrivateKey(path string) (protocol.PrivateKey, error) {
	var k protocol.PrivateKey
	f, err := os.Open(path)
	if err != nil {
		return k, fmt.Errorf("private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return k, fmt.Errorf("private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return k, fmt.Errorf("private key %s: not a regular file", path)
	}
	if err := checkKeyPerm(fi, path); err != nil {
		return k, err
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	defer clear(data)
	if err != nil {
		return k, fmt.Errorf("private key %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return k, fmt.Errorf("private key %s: larger than %d bytes: not a key file", path, maxKeyFile)
	}
	b, err := protocol.ParseKeyFileText(data)
	if err != nil {
		var kfe *protocol.KeyFileError
		if errors.As(err, &kfe) && kfe.Line > 0 {
			return k, fmt.Errorf("%s:%d: private key: %w", path, kfe.Line, kfe.Err)
		}
		return k, fmt.Errorf("%s: private key: %w", path, err)
	}
	k = protocol.PrivateKey(b)
	clear(b[:])
	if k.IsZero() {
		return k, fmt.Errorf("%s: %w", path, protocol.ErrZeroKey)
	}
	return k, nil
}

// WritePrivateKey creates path holding key in WireGuard's text form and a
// newline, readable by its owner only (mode 0600 on Unix), as knock keygen
// does (MODERN-12.2/2). It never replaces an existing file: the error wraps
// ErrKeyExists. On any error the new file is removed.
func WritePrivateKey(path string, key *protocol.PrivateKey) error {
	return keyfile.Write(path, key)
}
