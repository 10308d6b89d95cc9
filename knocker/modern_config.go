package knocker

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/doorman-project/doorman/protocol"
)

// ModernConfig holds the client configuration records of the modern
// protocol (MODERN-12.22), read from the same file as Config:
//
//	private-key ~/.knock.key                                        # the knocker's key file
//	server gw.example.net hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=   # a doorman and its public key
//	server 198.18.0.1    hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=
//	source local                                                    # or seen, or an address
//
// A knock to a host with a server record is a modern knock; to any other
// host, a classic one with the group and secret records.
type ModernConfig struct {
	// PrivateKeyFile is the knocker's private key file (record
	// "private-key"), "" if not set; ~/ is the home directory and a
	// relative path is taken from the configuration file's directory.
	PrivateKeyFile string
	// Servers maps each doorman's host, as the user types it, to its
	// public key (records "server").
	Servers map[string]protocol.PublicKey
	// Source and SourceAddr are the record "source" (SourceLocal if not
	// set).
	Source     SourceMode
	SourceAddr netip.Addr
}

// Record applies one record of the configuration file named file to m:
// keyword in lower case, value the rest of the line. It reports whether the
// keyword is one of m's; the caller reports an error with file and line.
func (m *ModernConfig) Record(file, keyword, value string) (bool, error) {
	switch keyword {
	case "private-key":
		v, err := oneValue(value)
		if err != nil {
			return true, fmt.Errorf("private-key: %w", err)
		}
		if _, err := protocol.ParsePrivateKey(v); err == nil {
			// Never echo it: it is a key, pasted where a path belongs.
			return true, errors.New("private-key: takes the path of a key file (knock keygen writes one), not the key itself; remove the key from this file")
		}
		m.PrivateKeyFile = expandPath(file, v)
		return true, nil
	case "server":
		host, key, err := parseServer(value)
		if err != nil {
			return true, fmt.Errorf("server: %w", err)
		}
		if m.Servers == nil {
			m.Servers = map[string]protocol.PublicKey{}
		}
		m.Servers[hostKey(host)] = key
		return true, nil
	case "source":
		v, err := oneValue(value)
		if err != nil {
			return true, fmt.Errorf("source: %w", err)
		}
		mode, addr, err := ParseSource(v)
		if err != nil {
			return true, fmt.Errorf("source: %w", err)
		}
		m.Source, m.SourceAddr = mode, addr
		return true, nil
	}
	return false, nil
}

// ServerKey returns the public key configured for host, matched as the
// user typed it (case-insensitively, IPv6 brackets ignored).
func (m *ModernConfig) ServerKey(host string) (protocol.PublicKey, bool) {
	k, ok := m.Servers[hostKey(host)]
	return k, ok
}

// hostKey is the form hosts are compared in.
func hostKey(host string) string {
	h := strings.ToLower(host)
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		h = h[1 : len(h)-1]
	}
	if a, err := netip.ParseAddr(h); err == nil {
		return a.Unmap().String()
	}
	return strings.TrimSuffix(h, ".")
}

// parseServer parses "HOST KEY" with an optional trailing comment.
func parseServer(value string) (string, protocol.PublicKey, error) {
	if i := strings.IndexByte(value, '#'); i >= 0 {
		value = value[:i]
	}
	f := strings.Fields(value)
	if len(f) != 2 {
		return "", protocol.PublicKey{}, fmt.Errorf("want a host and the doorman's public key, have %d values", len(f))
	}
	host := f[0]
	if h, ok := strings.CutPrefix(host, "["); ok {
		a, err := netip.ParseAddr(strings.TrimSuffix(h, "]"))
		if err != nil || !strings.HasSuffix(h, "]") || !a.Is6() {
			return "", protocol.PublicKey{}, fmt.Errorf("%q: brackets hold an IPv6 address", host)
		}
	}
	if hostKey(host) == "" {
		return "", protocol.PublicKey{}, fmt.Errorf("%q: empty host", host)
	}
	key, err := protocol.ParsePublicKey(f[1])
	if err != nil {
		return "", key, fmt.Errorf("%s: %w", host, err)
	}
	return host, key, nil
}

// ParseSource parses the value of a "source" record or option: "local",
// "seen", or an IP address to state.
func ParseSource(v string) (SourceMode, netip.Addr, error) {
	switch strings.ToLower(v) {
	case "local":
		return SourceLocal, netip.Addr{}, nil
	case "seen":
		return SourceSeen, netip.Addr{}, nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" || a.Unmap().IsUnspecified() {
		return 0, netip.Addr{}, fmt.Errorf("%q is not local, seen or an IP address", v)
	}
	return SourceFixed, a.Unmap(), nil
}

// expandPath resolves ~/ and paths relative to the configuration file.
func expandPath(file, p string) string {
	if rest, ok := strings.CutPrefix(p, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	if filepath.IsAbs(p) || file == "" {
		return p
	}
	return filepath.Join(filepath.Dir(file), p)
}
