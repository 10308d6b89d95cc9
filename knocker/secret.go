package knocker

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/doorman-project/doorman/protocol"
)

// MaxSecretLine bounds the line ReadSecretLine and ReadSecretFile read. A
// guest list secret has at most 255 characters (CLASSIC-9.3); the bound
// only keeps a wrong file or stream from being read whole.
const MaxSecretLine = 4096

// ErrSecretFormat: a secret file or line holds something besides the secret.
var ErrSecretFormat = errors.New("not a secret alone on one line")

// ReadSecretFile reads a secret kept alone in a file, so that it need not
// appear on a command line, where every local user can see it in the
// process list. The file holds the secret on one line, optionally ended by
// a newline (LF or CRLF), and nothing else. Like the configuration file it
// must be a regular file that only its owner may access: otherwise the
// error wraps ErrConfigPerm and names the fix (CLASSIC-10.3, CLASSIC-11.5/3). An empty
// secret wraps ErrNoSecret, any other content ErrSecretFormat; every error
// names the file.
func ReadSecretFile(path string) (protocol.Secret, error) {
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// Enough for the longest secret, CRLF, and one byte to tell "more".
	b, err := io.ReadAll(io.LimitReader(f, MaxSecretLine+3))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s, err := secretText(string(b), true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return protocol.Secret(s), nil
}

// ReadSecretLine reads one line from r and returns it as the secret,
// without its line end (LF or CRLF); end of input also ends the line. It
// reads one byte at a time so that nothing after the line is consumed: a
// program started afterwards inherits the rest of r. An empty line wraps
// ErrNoSecret; no input at all is io.ErrUnexpectedEOF.
func ReadSecretLine(r io.Reader) (protocol.Secret, error) {
	var b strings.Builder
	var c [1]byte
	for {
		n, err := r.Read(c[:])
		if n == 1 {
			if c[0] == '\n' {
				break
			}
			if b.Len() > MaxSecretLine { // one more than the longest secret, for a '\r'
				return nil, fmt.Errorf("%w: longer than %d bytes", ErrSecretFormat, MaxSecretLine)
			}
			b.WriteByte(c[0])
			continue
		}
		if err == io.EOF {
			if b.Len() == 0 {
				return nil, io.ErrUnexpectedEOF
			}
			break
		}
		if err != nil {
			return nil, err
		}
	}
	s, err := secretText(b.String(), false)
	if err != nil {
		return nil, err
	}
	return protocol.Secret(s), nil
}

// secretText strips one line end from text and checks that what is left
// is one non-empty line of guest list characters. whole says text is all there is (a file), so a
// second line is an error rather than unread input.
func secretText(text string, whole bool) (string, error) {
	line, rest, _ := strings.Cut(text, "\n")
	line = strings.TrimSuffix(line, "\r")
	switch {
	case len(line) > MaxSecretLine:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrSecretFormat, MaxSecretLine)
	case whole && rest != "":
		return "", fmt.Errorf("%w: more than one line", ErrSecretFormat)
	case line == "":
		return "", fmt.Errorf("%w: empty secret", ErrNoSecret)
	}
	if !protocol.ValidName(line) {
		// A guest list refuses such a secret (CLASSIC-9.3), so no knock
		// signed with it can open a door: a stray blank is the usual cause.
		// The position, not the character, keeps the secret out of the message.
		pos := 1
		for pos <= len(line) && protocol.ValidName(line[pos-1:pos]) {
			pos++
		}
		return "", fmt.Errorf("%w: character %d of the secret is not a letter, digit or one of %s",
			ErrSecretFormat, pos, protocol.GroupAlphabet)
	}
	return line, nil
}
