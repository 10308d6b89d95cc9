package knocker

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/doorman-project/doorman/protocol"
)

// Config is the client's configuration file, ~/.knockcf (CLASSIC-10.1): one
// "keyword value" record per line, keywords in any case, "#" to the end of
// the line a comment. Fields a file does not set keep their zero value.
//
//	group alice
//	secret s3cretKnock
//	port 1001
//	run "ssh -p %P% %H%"
//
// The records of the modern protocol (private-key, server, source) are
// in Modern.
type Config struct {
	// Path is the name the file was read under, for messages.
	Path string
	// Group is the group name to send (record "group").
	Group string
	// Secret is the group's secret (record "secret").
	Secret protocol.Secret
	// KnockPort is the doorman's UDP port (record "port"); 0 if not set.
	KnockPort uint16
	// Run is the command to run after the knock (record "run"), with the
	// %H% and %P% placeholders not yet replaced; see ExpandRun.
	Run string
	// Modern holds the records of the modern protocol (MODERN-12.22): a
	// knock to a host with a server record is a modern knock.
	Modern ModernConfig
	// Warnings lists records that were ignored or overridden, each
	// prefixed with file:line. 0.81 ignored unknown keywords silently;
	// a typo then looked like a missing record, so they are reported here.
	Warnings []string
}

// ConfigError is a configuration record that cannot be used.
type ConfigError struct {
	File string
	Line int
	// Text is the line as written, with a secret's value redacted.
	Text string
	Err  error
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d: %v: %q", e.File, e.Line, e.Err, e.Text)
}

func (e *ConfigError) Unwrap() error { return e.Err }

// maxConfigLine bounds one line of a configuration file.
const maxConfigLine = 4096

// LoadConfig reads the configuration file at path. On Unix it refuses a file
// that its group or others may access in any way, because it holds the
// secret (CLASSIC-10.3); the error wraps ErrConfigPerm and names the fix. A
// missing file gives an error satisfying errors.Is(err, fs.ErrNotExist).
func LoadConfig(path string) (*Config, error) {
	f, err := openPrivate(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseConfig(path, f)
}

// openPrivate opens a file that holds a secret: it must be a regular file
// that only its owner may access (CLASSIC-10.3, checkPrivate).
func openPrivate(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s: not a regular file", path)
	}
	if err == nil {
		err = checkPrivate(fi, path)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// ParseConfig parses a configuration file read from r; name is used in
// messages. Errors are *ConfigError values naming file:line and the text.
func ParseConfig(name string, r io.Reader) (*Config, error) {
	c := &Config{Path: name}
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxConfigLine)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSuffix(sc.Text(), "\r")
		kw, known, err := c.record(text)
		if err != nil {
			shown := text
			if kw == "secret" || kw == "private-key" {
				// The value may be a secret or, pasted where a path
				// belongs, a private key.
				shown = kw + " [redacted]"
			}
			return nil, &ConfigError{File: name, Line: line, Text: shown, Err: err}
		}
		if kw == "" {
			continue
		}
		if !known {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: unknown keyword %q ignored", name, line, kw))
			continue
		}
		key, label := kw, kw
		if kw == "server" {
			// One record per doorman: only the same host repeats.
			host := strings.Fields(text)[1]
			key, label = "server "+hostKey(host), "server "+host
		}
		if prev, ok := seen[key]; ok {
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s:%d: %s repeats line %d; the later record wins", name, line, label, prev))
		}
		seen[key] = line
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("line longer than %d bytes", maxConfigLine)
		}
		return nil, &ConfigError{File: name, Line: line + 1, Err: err}
	}
	return c, nil
}

// record applies one line to c. It returns the line's keyword in lower case
// ("" for a blank or comment line) and whether it is one c knows: unknown
// keywords are warnings, not errors.
func (c *Config) record(text string) (kw string, known bool, err error) {
	s := strings.TrimSpace(text)
	if s == "" || s[0] == '#' {
		return "", false, nil
	}
	word, rest := s, ""
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		word, rest = s[:i], strings.TrimSpace(s[i+1:])
	}
	kw = strings.ToLower(word)
	switch kw {
	case "group", "secret", "port":
		v, err := oneValue(rest)
		if err != nil {
			return kw, true, fmt.Errorf("%s: %w", kw, err)
		}
		switch kw {
		case "group":
			if err := CheckGroup(v); err != nil {
				return kw, true, err
			}
			c.Group = v
		case "secret":
			c.Secret = protocol.Secret(v)
		case "port":
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 || !isDigits(v) {
				return kw, true, fmt.Errorf("port: %q is not a UDP port 1-65535", v)
			}
			c.KnockPort = uint16(n)
		}
		return kw, true, nil
	case "run":
		v, err := runValue(rest)
		if err != nil {
			return kw, true, fmt.Errorf("run: %w", err)
		}
		c.Run = v
		return kw, true, nil
	}
	if ok, err := c.Modern.Record(c.Path, kw, rest); ok {
		return kw, true, err
	}
	return word, false, nil
}

// oneValue returns the single word of a record's value, dropping a trailing
// comment. Names and secrets cannot contain '#' or blanks (CLASSIC-9.3), so
// neither can be mistaken for part of a value.
func oneValue(rest string) (string, error) {
	if i := strings.IndexByte(rest, '#'); i >= 0 {
		rest = rest[:i]
	}
	f := strings.Fields(rest)
	switch len(f) {
	case 0:
		return "", errors.New("missing value")
	case 1:
		return f[0], nil
	}
	return "", fmt.Errorf("want one value, have %d", len(f))
}

// runValue returns the command of a run record. A quoted command runs to the
// last double quote on the line, so it may itself contain double quotes; only
// blanks or a comment may follow. An unquoted command runs to a '#'.
func runValue(rest string) (string, error) {
	if !strings.HasPrefix(rest, `"`) {
		if i := strings.IndexByte(rest, '#'); i >= 0 {
			rest = rest[:i]
		}
		return strings.TrimSpace(rest), nil
	}
	end := strings.LastIndexByte(rest, '"')
	if end == 0 {
		return "", errors.New("missing closing double quote")
	}
	if tail := strings.TrimSpace(rest[end+1:]); tail != "" && tail[0] != '#' {
		return "", fmt.Errorf("text after the closing quote: %q", tail)
	}
	return rest[1:end], nil
}

// ExpandRun replaces %H% in a run command with host and %P% with service,
// the port or service name as the user gave it (CLASSIC-10.1).
func ExpandRun(cmd, host, service string) string {
	return strings.NewReplacer("%H%", host, "%P%", service).Replace(cmd)
}

// RunDisabled reports whether a -r value turns the run command off: blank,
// or 0, X or x as in 0.81.
func RunDisabled(v string) bool {
	switch strings.TrimSpace(v) {
	case "", "0", "X", "x":
		return true
	}
	return false
}
