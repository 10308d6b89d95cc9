//go:build linux

package conformance

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Cases for the knocker's side of the modern protocol (section 12): what
// it sends to a host with a server record, opened with the doorman's
// private key the suite made, and its key commands.
func modernClientCases() []*Case {
	return []*Case{
		{ID: "12.3/client-modern-knock", Requirement: "MODERN-12.3/1", Level: "MUST", Target: TargetClient,
			Also: []string{"MODERN-12.6/1", "MODERN-12.7", "MODERN-12.8/2", "MODERN-12.9", "MODERN-12.22"},
			Description: "to a host with a server record the client sends exactly one 178-byte datagram with a right mac1, which " +
				"opens with the doorman's private key to the client's public key and a canonical request for the port, " +
				"stamped with the clock, stating the address it sends from",
			Run: runClientModern},
		{ID: "12.10/client-fresh-ephemeral", Requirement: "MODERN-12.10", Level: "MUST", Target: TargetClient,
			Also:        []string{"MODERN-12.9"},
			Description: "20 modern knocks carry 20 different ephemeral keys, and each a later time than the one before",
			Timeout:     time.Minute, Run: runClientEphemeral},
		{ID: "12.22/client-source", Requirement: "MODERN-12.22", Level: "MUST", Target: TargetClient,
			Description: "with `source seen` the knock states no source; with `source ADDRESS` it states that address",
			Run:         runClientSource},
		{ID: "12.22/client-key-permissions", Requirement: "MODERN-12.22", Level: "MUST", Target: TargetClient,
			Description: "a private key file that group and others may read (mode 0644) is refused: no datagram is sent",
			Run: func(e *Env) error {
				d := e.modernKnockData(newKeyPair(), newKeyPair().pub)
				d.keyMode = 0o644
				return e.clientSendsNothing(d, "a private key file of mode 0644")
			}},
		{ID: "12.2/client-refuses-bad-keys", Requirement: "MODERN-12.2/3", Level: "MUST", Target: TargetClient,
			Description: "a server record whose key is zero or of small order, and a private key of 32 zero bytes, are refused: no datagram is sent",
			Run: func(e *Env) error {
				for _, k := range []struct {
					what           string
					client, server [32]byte
				}{
					{"a server record with the zero key", newKeyPair().priv, [32]byte{}},
					{"a server record with a key of order 8", newKeyPair().priv, smallOrderPoint},
					{"a private key of 32 zero bytes", [32]byte{}, newKeyPair().pub},
				} {
					d := e.modernKnockData(newKeyPair(), k.server)
					d.key = &keyPair{priv: k.client}
					if err := e.clientSendsNothing(d, k.what); err != nil {
						return err
					}
				}
				return nil
			}},
		{ID: "12.2/client-keygen", Requirement: "MODERN-12.2/2", Level: "MUST", Target: TargetClient,
			Also: []string{"MODERN-12.2/1", "MODERN-12.23"},
			Description: "keygen writes a clamped private key to a new file of mode 0600 and prints its public key alone on " +
				"one line; it refuses to replace the file; pubkey prints the same key; a modern knock made with the file carries it",
			Run: runClientKeygen},
	}
}

// modernKnockData is the knock data for a modern knock for portA to the
// doorman with public key server, made with the client key pair key.
func (e *Env) modernKnockData(key keyPair, server [32]byte) KnockData {
	d := e.knockData(strconv.Itoa(portA))
	d.ServerKey = keyText(server)
	d.key = &key
	return d
}

// needModern reports the modern client cases unsupported for an adapter
// without modern_knock.
func (e *Env) needModern() error {
	if len(e.Client.ModernKnock) == 0 {
		return fmt.Errorf("%w: the client adapter names no modern_knock command", ErrUnsupported)
	}
	return nil
}

// clientDatagrams runs the adapter's modern_knock with d against a UDP
// listener on the server and returns what arrived within wait; the
// command's own failure is returned alongside.
func (e *Env) clientDatagrams(d KnockData, wait time.Duration) ([][]byte, error) {
	ln, err := udpListen(e.Topo.Server, knockPort)
	if err != nil {
		return nil, setupErr(err)
	}
	defer ln.Close()
	_, runErr := e.runClient(e.Client.ModernKnock, d, e.Topo.Client.NS)
	if errors.Is(runErr, ErrSetup) {
		return nil, runErr
	}
	var out [][]byte
	buf := make([]byte, 2048)
	for {
		_ = ln.SetReadDeadline(time.Now().Add(wait))
		n, _, err := ln.ReadFromUDP(buf)
		if err != nil {
			return out, runErr
		}
		out = append(out, append([]byte(nil), buf[:n]...))
		wait = 200 * time.Millisecond
	}
}

// clientModernOnce sends one modern knock with d and opens it with the
// doorman's key pair: it fails unless exactly one well-made knock
// arrives.
func (e *Env) clientModernOnce(d KnockData, doorman keyPair) (client [32]byte, r modernRequest, raw []byte, err error) {
	if err := e.needModern(); err != nil {
		return client, r, nil, err
	}
	before := time.Now()
	ds, runErr := e.clientDatagrams(d, 3*time.Second)
	switch {
	case len(ds) == 0 && runErr != nil:
		return client, r, nil, runErr
	case len(ds) == 0:
		return client, r, nil, mismatch("one modern knock datagram", "none within 3 s")
	case len(ds) > 1:
		return client, r, nil, mismatch("exactly one datagram per knock (MODERN-12.3/1)", "%d", len(ds))
	}
	raw = ds[0]
	client, req, err := openModern(doorman, raw)
	switch {
	case errors.Is(err, errModernForm):
		return client, r, raw, mismatch(fmt.Sprintf("a knock of %d bytes starting d2 01 (MODERN-12.3/1)", modernKnockLen), "%v", err)
	case errors.Is(err, errModernMAC1):
		return client, r, raw, mismatch("mac1 keyed with the doorman's public key (MODERN-12.6/1)", "%x", raw[offMAC1:])
	case err != nil:
		return client, r, raw, mismatch("a Noise X message that opens with the doorman's private key (MODERN-12.5)", "%v", err)
	}
	if d.key != nil && client != d.key.pub {
		return client, r, raw, mismatch("the static key of the private key file, "+keyText(d.key.pub), "%s", keyText(client))
	}
	r, _ = parseRequest(req)
	if err := r.check(); err != nil {
		return client, r, raw, mismatch("a canonical request (MODERN-12.8/2)", "%v; request %x", err, req)
	}
	if r.Port != portA {
		return client, r, raw, mismatch(fmt.Sprintf("port %d", portA), "%d", r.Port)
	}
	// The knocker's clock is the suite's: the time falls between the
	// command's start and now, give or take a second (MODERN-12.9).
	t := time.Unix(0, int64(r.Time))
	if t.Before(before.Add(-time.Second)) || t.After(time.Now().Add(time.Second)) {
		return client, r, raw, mismatch(fmt.Sprintf("the time the knock was built, between %s and now (MODERN-12.9)", before.Format(time.RFC3339Nano)),
			"%s", t.Format(time.RFC3339Nano))
	}
	return client, r, raw, nil
}

func runClientModern(e *Env) error {
	doorman := newKeyPair()
	_, r, _, err := e.clientModernOnce(e.modernKnockData(newKeyPair(), doorman.pub), doorman)
	if err != nil {
		return err
	}
	// The default is `source local`: the address it sends from.
	if want := e.Topo.Client.Addr; r.Source() != want {
		return mismatch("the stated source "+want.String()+" (source local, the default)", "%v (family %d)", r.Source(), r.Family)
	}
	return nil
}

func runClientEphemeral(e *Env) error {
	doorman := newKeyPair()
	d := e.modernKnockData(newKeyPair(), doorman.pub)
	const n = 20
	seen := map[[32]byte]int{}
	var last uint64
	for i := range n {
		_, r, raw, err := e.clientModernOnce(d, doorman)
		if err != nil {
			return fmt.Errorf("knock %d: %w", i+1, err)
		}
		eph := [32]byte(raw[offEphemeral:offStatic])
		if j, dup := seen[eph]; dup {
			return mismatch(fmt.Sprintf("%d different ephemeral keys", n), "knock %d reuses the ephemeral key of knock %d: %x", i+1, j+1, eph)
		}
		seen[eph] = i
		if r.Time <= last {
			return mismatch("each knock later than the one before (MODERN-12.9)", "knock %d has time %d, the one before %d", i+1, r.Time, last)
		}
		last = r.Time
	}
	return nil
}

func runClientSource(e *Env) error {
	doorman := newKeyPair()
	other := e.Topo.Client2.Addr
	for _, c := range []struct {
		source string
		want   netip.Addr
	}{{"seen", netip.Addr{}}, {other.String(), other}} {
		d := e.modernKnockData(newKeyPair(), doorman.pub)
		d.Source = c.source
		_, r, _, err := e.clientModernOnce(d, doorman)
		if err != nil {
			return fmt.Errorf("source %s: %w", c.source, err)
		}
		if r.Source() != c.want || (c.source == "seen" && r.Family != 0) {
			return mismatch(fmt.Sprintf("with source %s the stated source %v", c.source, c.want), "family %d, address %v", r.Family, r.Source())
		}
	}
	return nil
}

// clientSendsNothing checks that the client refuses the knock d describes:
// no datagram reaches the server.
func (e *Env) clientSendsNothing(d KnockData, what string) error {
	if err := e.needModern(); err != nil {
		return err
	}
	ds, err := e.clientDatagrams(d, time.Second)
	if errors.Is(err, ErrSetup) {
		return err
	}
	if len(ds) > 0 {
		return mismatch("the knock refused, nothing sent, with "+what, "%d datagram(s) of %d bytes", len(ds), len(ds[0]))
	}
	return nil
}

// readKeyFile reads a key file in the form of MODERN-12.2: one key in text
// form, blank lines and # comments around it.
func readKeyFile(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return [32]byte{}, err
	}
	var key string
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if key != "" {
			return [32]byte{}, errors.New("more than one key line")
		}
		key = line
	}
	return parseKeyText(key)
}

func runClientKeygen(e *Env) error {
	if len(e.Client.Keygen) == 0 {
		return fmt.Errorf("%w: the client adapter names no keygen and pubkey commands", ErrUnsupported)
	}
	d := e.knockData(strconv.Itoa(portA))
	d.KeyFile = filepath.Join(e.WorkDir, "keygen", "client.key")
	if err := os.MkdirAll(filepath.Dir(d.KeyFile), 0o700); err != nil {
		return setupErr(err)
	}
	out, err := e.runClient(e.Client.Keygen, d, "")
	if err != nil {
		return mismatch("keygen writes a key", "%v", err)
	}
	pub, err := parseKeyText(strings.TrimSpace(firstLine(out)))
	if err != nil {
		return mismatch("keygen prints the public key alone on its first line", "%q", strings.TrimSpace(firstLine(out)))
	}
	st, err := os.Stat(d.KeyFile)
	if err != nil {
		return mismatch("keygen creates "+d.KeyFile, "%v", err)
	}
	if st.Mode().Perm() != 0o600 {
		return mismatch("a private key file of mode 0600 (MODERN-12.2/2)", "%v", st.Mode().Perm())
	}
	priv, err := readKeyFile(d.KeyFile)
	if err != nil {
		return mismatch("a key file holding one key in text form (MODERN-12.2)", "%v", err)
	}
	if priv[0]&7 != 0 || priv[31]&0xc0 != 0x40 {
		return mismatch("a private key clamped as wg genkey clamps it (MODERN-12.2/1)", "first byte %#02x, last %#02x", priv[0], priv[31])
	}
	kp := keyPairFrom(priv)
	if kp.pub != pub {
		return mismatch("keygen prints the public key of the key it wrote, "+keyText(kp.pub), "%s", keyText(pub))
	}
	before, _ := os.ReadFile(d.KeyFile)
	if _, err := e.runClient(e.Client.Keygen, d, ""); err == nil {
		return mismatch("keygen refuses to replace an existing key file (MODERN-12.2/2)", "it succeeded")
	}
	if after, _ := os.ReadFile(d.KeyFile); !bytes.Equal(before, after) {
		return mismatch("the existing key file left as it was (MODERN-12.2/2)", "it changed")
	}
	out, err = e.runClient(e.Client.Pubkey, d, "")
	if err != nil {
		return mismatch("pubkey prints the public key", "%v", err)
	}
	if got := strings.TrimSpace(firstLine(out)); got != keyText(pub) {
		return mismatch("pubkey prints "+keyText(pub), "%q", got)
	}
	doorman := newKeyPair()
	d.ServerKey = keyText(doorman.pub)
	client, _, _, err := e.clientModernOnce(d, doorman)
	if err != nil {
		return err
	}
	if client != pub {
		return mismatch("the knock carries the key keygen made, "+keyText(pub), "%s", keyText(client))
	}
	return nil
}
