package config

import (
	"errors"

	"github.com/doorman-project/doorman/internal/keyfile"
	"github.com/doorman-project/doorman/protocol"
)

// DefaultPrivateKeyPath is where doormand keygen writes the doorman's
// private key, and where doormand looks for it, unless doormand.cf says
// otherwise with private-key (MODERN-12.21).
const DefaultPrivateKeyPath = "/etc/doorman/doormand.key"

// LoadPrivateKey reads the doorman's private key file (MODERN-12.2,
// MODERN-12.21): one key in WireGuard's text form. With checkPerms
// (doormand without -D) it must first pass the KindPrivateKey rules of
// CheckOwner: a regular file owned by root with no permission bits for
// group or others. Errors name the file and line, never the key's text.
func LoadPrivateKey(path string, checkPerms bool) (protocol.PrivateKey, error) {
	data, err := readChecked(path, KindPrivateKey, checkPerms)
	if err != nil {
		return protocol.PrivateKey{}, err
	}
	defer clear(data)
	b, err := protocol.ParseKeyFileText(data)
	if err != nil {
		return protocol.PrivateKey{}, keyFileError(path, err)
	}
	k := protocol.PrivateKey(b)
	clear(b[:])
	if k.IsZero() {
		return k, &Error{File: path, Key: "private key", Msg: protocol.ErrZeroKey.Error(), Err: protocol.ErrZeroKey}
	}
	return k, nil
}

func keyFileError(path string, err error) error {
	var kfe *protocol.KeyFileError
	if errors.As(err, &kfe) {
		return &Error{File: path, Line: kfe.Line, Key: "private key", Msg: kfe.Err.Error(), Err: kfe.Err}
	}
	return &Error{File: path, Key: "private key", Msg: err.Error(), Err: err}
}

// ErrKeyExists is wrapped by WritePrivateKey's error when the file exists.
var ErrKeyExists = keyfile.ErrExists

// WritePrivateKey creates path with key in WireGuard's text form and a
// newline, mode 0600, as doormand keygen does (MODERN-12.2/2). It never
// replaces an existing file (the error wraps ErrKeyExists): the old key may
// be the only copy, and every knocker's configuration names its public key.
// The file is synced before WritePrivateKey returns; on any error it is
// removed.
func WritePrivateKey(path string, key *protocol.PrivateKey) error {
	return keyfile.Write(path, key)
}
