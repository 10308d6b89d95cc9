package config

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/doorman-project/doorman/protocol"
)

// Guest-list limits (CLASSIC-9.3).
const (
	// MaxSecretLen is the longest secret accepted. Doorman 0.81 allowed 64
	// characters; longer secrets are accepted with a warning because only
	// this implementation can use them.
	MaxSecretLen = 255
	// ClassicMaxSecretLen is Doorman 0.81's secret limit.
	ClassicMaxSecretLen = 64
	// MinGoodSecretLen is the length below which a secret draws a warning:
	// one sniffed knock lets anyone guess it offline.
	MinGoodSecretLen = 8
	// KeyPrefix marks a modern guest's public key in the secret column
	// (MODERN-12.20): "pubkey." and the key's 44 base64 characters. A
	// classic secret can never contain '.', so the two cannot be confused;
	// base64 alone could, since + / = are secret characters.
	KeyPrefix = "pubkey."
)

// ParseGuestList reads a guest list (CLASSIC-9.1 to 9.4) from r; name is used in
// messages and res (nil means NetResolver{}) looks up service and host names.
//
// A record is "<group> <secret> <port-or-service>... <address[/bits] or
// hostname[/bits]>...", or for a modern guest "<group> pubkey.<key> ..."
// with the guest's X25519 public key in place of the secret (MODERN-12.20):
// the group starts in column 1, a line starting with
// whitespace continues the record above, and '#' starts a comment. A field
// is a port if it is a number or a service name res knows, otherwise an
// address: an IPv4 or IPv6 literal, or a host name that is resolved now and
// stands for every address it resolves to. Without /bits an address is a
// single host.
//
// Every error in the file is reported (errors.Join of *Error values, which
// name file, line and the offending text but never a secret); on error no
// guests are returned. Warnings never stop the list from loading.
func ParseGuestList(name string, r io.Reader, res Resolver) ([]protocol.Guest, []Warning, error) {
	if res == nil {
		res = NetResolver{}
	}
	is := &issues{file: name}
	recs := splitRecords(r, is)
	var guests []protocol.Guest
	defined := map[string]int{}            // group -> line
	keys := map[protocol.PublicKey]token{} // key -> group and its line
	for _, rec := range recs {
		g, ok := parseRecord(rec, res, is)
		if !ok {
			continue
		}
		if prev, dup := defined[g.Name]; dup {
			is.errorf(rec.line, "group", g.Name, fmt.Sprintf("already defined on line %d", prev), nil)
			continue
		}
		if g.IsModern() {
			// The key is the guest's identity on the wire (MODERN-12.13):
			// two groups with one key would be one guest with two rules.
			if prev, dup := keys[g.Key]; dup {
				is.errorf(rec.toks[1].line, "public key of group", g.Name, fmt.Sprintf(
					"is already the key of group %q on line %d; each guest needs a key pair of its own", prev.text, prev.line), nil)
				continue
			}
			keys[g.Key] = token{g.Name, rec.line}
		}
		defined[g.Name] = rec.line
		guests = append(guests, g)
	}
	if len(is.errs) > 0 {
		return nil, is.warnings, errors.Join(is.errs...)
	}
	if len(guests) == 0 {
		is.warn(0, "", "", "no guests: every knock will be refused")
	}
	return guests, is.warnings, nil
}

// LoadGuestList reads the guest list at path. With checkPerms (doormand
// without -D) the open file must pass the KindGuestList rules of CheckOwner
// before it is read.
func LoadGuestList(path string, checkPerms bool, res Resolver) ([]protocol.Guest, []Warning, error) {
	data, err := readChecked(path, KindGuestList, checkPerms)
	if err != nil {
		return nil, nil, err
	}
	return ParseGuestList(path, bytes.NewReader(data), res)
}

type token struct {
	text string
	line int
}

type record struct {
	line int // line of the group name
	toks []token
}

// splitRecords tokenizes the file into records, joining continuation lines.
func splitRecords(r io.Reader, is *issues) []record {
	var recs []record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxLineLen)
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if i := strings.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		fields := strings.FieldsFunc(text, asciiSpace)
		if len(fields) == 0 {
			continue
		}
		if !asciiSpace(rune(text[0])) {
			recs = append(recs, record{line: line})
		} else if len(recs) == 0 {
			is.errorf(line, "", fields[0], "continuation line (starts with whitespace) before any record; a group name starts in column 1", nil)
			continue
		}
		cur := &recs[len(recs)-1]
		for _, f := range fields {
			cur.toks = append(cur.toks, token{f, line})
		}
	}
	if err := sc.Err(); err != nil {
		is.errorf(line+1, "", "", "cannot read: "+err.Error(), err)
	}
	return recs
}

// parseRecord turns one record into a guest, reporting every problem.
func parseRecord(rec record, res Resolver, is *issues) (protocol.Guest, bool) {
	nerr := len(is.errs)
	group := rec.toks[0]
	g := protocol.Guest{Name: group.text}
	if len(group.text) > protocol.MaxGroupLen || !protocol.ValidName(group.text) {
		is.errorf(group.line, "group", group.text, fmt.Sprintf(
			"must be 1 to %d letters, digits or %s", protocol.MaxGroupLen, protocol.GroupAlphabet), nil)
	}
	if len(rec.toks) < 2 {
		is.errorf(group.line, "group", group.text, "has no secret, ports or addresses", nil)
		return g, false
	}
	secret := rec.toks[1]
	if key, ok := strings.CutPrefix(secret.text, KeyPrefix); ok {
		g.Key = parseGuestKey(key, secret.line, group.text, is)
	} else {
		checkSecret(secret, group.text, is)
		g.Secret = protocol.Secret(secret.text)
	}

	var sawAddr bool
	beforeFields := len(is.errs)
	for _, t := range rec.toks[2:] {
		if allDigits(t.text) {
			p, err := parsePortNumber(t.text)
			if err != nil {
				is.errorf(t.line, "port", t.text, err.Error(), nil)
				continue
			}
			addPort(&g, p, t, is)
			continue
		}
		if serviceSyntax(t.text) {
			if p, err := res.LookupPort(t.text); err == nil && p != 0 {
				if sawAddr {
					is.warn(t.line, "port", t.text, fmt.Sprintf(
						"is the service name for port %d but follows an address; if a host is meant, write its address", p))
				}
				addPort(&g, p, t, is)
				continue
			}
		}
		sawAddr = true
		addAddress(&g, t, res, is)
	}
	// A missing port or address is only worth saying when no field of
	// the record was rejected: otherwise it is the same mistake twice.
	fieldsOK := len(is.errs) == beforeFields
	if len(g.Ports) == 0 && fieldsOK {
		is.errorf(group.line, "group", group.text, "has no port: list at least one port number or service name", nil)
	}
	if len(g.Nets) == 0 && fieldsOK {
		is.errorf(group.line, "group", group.text, "has no address: list at least one address or host name", nil)
	}
	slices.Sort(g.Ports)
	return g, len(is.errs) == nerr
}

// parseGuestKey parses the key after KeyPrefix. A public key is no secret,
// so errors show it.
func parseGuestKey(text string, line int, group string, is *issues) protocol.PublicKey {
	k, err := protocol.ParsePublicKey(text)
	switch {
	case errors.Is(err, protocol.ErrWeakKey):
		is.errorf(line, "public key of group", group, fmt.Sprintf("%s is %v", text, err), nil)
	case err != nil:
		is.errorf(line, "public key of group", group, fmt.Sprintf(
			"%q is not a key: after %s write the guest's public key, 44 characters of base64 as knock keygen prints it", text, KeyPrefix), nil)
	}
	return k
}

// looksLikeKey reports whether a classic secret is in fact a bare public
// key: 44 characters of base64 that decode to 32 bytes.
func looksLikeKey(s string) bool {
	if len(s) != protocol.KeyTextLen || s[len(s)-1] != '=' {
		return false
	}
	_, err := protocol.ParsePrivateKey(s) // syntax only; never a weak-key error
	return err == nil
}

// checkSecret validates the secret without ever echoing it.
func checkSecret(t token, group string, is *issues) {
	s := t.text
	switch {
	case len(s) > MaxSecretLen:
		is.errorf(t.line, "secret of group", group, fmt.Sprintf("is %d characters; at most %d", len(s), MaxSecretLen), nil)
		return
	case !protocol.ValidName(s):
		pos := 0
		for i := 0; i < len(s); i++ {
			if !protocol.ValidName(s[i : i+1]) {
				pos = i + 1
				break
			}
		}
		is.errorf(t.line, "secret of group", group, fmt.Sprintf(
			"character %d is not a letter, digit or one of %s", pos, protocol.GroupAlphabet), nil)
		return
	case looksLikeKey(s):
		is.warn(t.line, "secret of group", group, fmt.Sprintf(
			"looks like a public key; for a modern guest write %s before it; as written it is a classic secret", KeyPrefix))
	case len(s) > ClassicMaxSecretLen:
		is.warn(t.line, "secret of group", group, fmt.Sprintf(
			"is %d characters; Doorman 0.81 allows at most %d, so its knock client cannot use it", len(s), ClassicMaxSecretLen))
	case len(s) < MinGoodSecretLen:
		is.warn(t.line, "secret of group", group, fmt.Sprintf(
			"is only %d characters: one sniffed knock lets anyone guess it offline", len(s)))
	}
}

func addPort(g *protocol.Guest, p uint16, t token, is *issues) {
	if slices.Contains(g.Ports, p) {
		is.warn(t.line, "port", t.text, fmt.Sprintf("port %d is listed twice", p))
		return
	}
	g.Ports = append(g.Ports, p)
}

// addAddress parses an address[/bits] or hostname[/bits] entry.
func addAddress(g *protocol.Guest, t token, res Resolver, is *issues) {
	host, bitsText, hasBits := strings.Cut(t.text, "/")
	bits := -1
	if hasBits {
		if !allDigits(bitsText) || len(bitsText) > 3 {
			is.errorf(t.line, "address", t.text, "the part after '/' must be a prefix length in bits", nil)
			return
		}
		bits, _ = strconv.Atoi(bitsText)
	}
	var addrs []netip.Addr
	literal := false
	if a, err := netip.ParseAddr(host); err == nil {
		if a.Zone() != "" {
			is.errorf(t.line, "address", t.text, "must not have a zone (%...)", nil)
			return
		}
		literal = true
		if a.Is4In6() {
			a = a.Unmap()
			if bits >= 0 {
				if bits < 96 {
					is.errorf(t.line, "address", t.text, "an IPv4-mapped address needs a prefix length of at least 96", nil)
					return
				}
				bits -= 96
			}
		}
		addrs = []netip.Addr{a}
	} else {
		if msg := badHostname(host); msg != "" {
			is.errorf(t.line, "address", t.text, msg, nil)
			return
		}
		var err error
		addrs, err = res.LookupHost(host)
		if err != nil {
			is.errorf(t.line, "host", host, "cannot resolve: "+err.Error(), err)
			return
		}
		if len(addrs) == 0 {
			is.errorf(t.line, "host", host, "resolves to no address", nil)
			return
		}
		// "/24" means something else for IPv4 than for IPv6; applied to
		// the other family it could let a whole provider knock.
		if hasBits && mixedFamilies(addrs) {
			is.errorf(t.line, "address", t.text, fmt.Sprintf(
				"%s resolves to both IPv4 and IPv6 addresses, so /%d is ambiguous; list the prefixes instead", host, bits), nil)
			return
		}
	}
	for _, a := range addrs {
		a = a.Unmap().WithZone("")
		if !a.IsValid() {
			continue
		}
		b := bits
		if b < 0 {
			b = a.BitLen()
		}
		if b > a.BitLen() {
			fam := "IPv4"
			if a.Is6() {
				fam = "IPv6"
			}
			msg := fmt.Sprintf("prefix length /%d is too long for an %s address (at most /%d)", b, fam, a.BitLen())
			if !literal {
				msg = fmt.Sprintf("resolves to %v: %s", a, msg)
			}
			is.errorf(t.line, "address", t.text, msg, nil)
			return
		}
		p := netip.PrefixFrom(a, b)
		m := p.Masked()
		if literal && m != p {
			is.warn(t.line, "address", t.text, fmt.Sprintf("has bits set beyond the /%d prefix; using %v", b, m))
		}
		if b == 0 && !g.IsModern() {
			// A modern knock proves its key, so "anywhere" is the usual
			// entry for a guest on the move; a classic one only its secret.
			is.warn(t.line, "address", t.text, "matches every address: this guest may knock from anywhere")
		}
		if !slices.Contains(g.Nets, m) {
			g.Nets = append(g.Nets, m)
		}
	}
	g.Sources = append(g.Sources, t.text)
}

// badHostname says why host is not a host name that may be looked up, or
// returns "" if it is one: dot-separated labels of letters, digits and
// '-' (not at either end), each 1-63 bytes, 253 in all, the last not all
// digits (so a mistyped IPv4 address is never sent to DNS).
func badHostname(host string) string {
	const notName = "not a port number, service name, IP address or host name"
	if strings.ContainsRune(host, ':') {
		return "not a valid IPv6 address"
	}
	h := strings.TrimSuffix(host, ".")
	if h == "" || len(h) > 253 {
		return notName
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return notName
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !isLetter(c) && !isDigit(c) && c != '-' {
				return notName
			}
		}
	}
	if allDigits(labels[len(labels)-1]) {
		return "not a valid IPv4 address"
	}
	return ""
}

func mixedFamilies(addrs []netip.Addr) bool {
	v4, v6 := false, false
	for _, a := range addrs {
		if a.Unmap().Is4() {
			v4 = true
		} else {
			v6 = true
		}
	}
	return v4 && v6
}
