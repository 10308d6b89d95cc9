package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/protocol"
)

func runDoormand(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// onePublicKey checks that out is a public key alone on one line, as wg
// pubkey prints it (MODERN-12.23).
func onePublicKey(t *testing.T, out string) protocol.PublicKey {
	t.Helper()
	text, ok := strings.CutSuffix(out, "\n")
	k, err := protocol.ParsePublicKey(text)
	if !ok || err != nil {
		t.Fatalf("stdout %q is not one public key on one line: %v", out, err)
	}
	return k
}

// TestKeygenPubkey: doormand keygen writes the configured private key
// (MODERN-12.2/2), creating its directory, prints its public key, never
// replaces a key; doormand pubkey prints the configured key's public key
// (MODERN-12.23).
func TestKeygenPubkey(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "doormand.cf")
	keyFile := filepath.Join(dir, "keys", "doormand.key")
	os.WriteFile(cf, []byte("interface eth0\nprivate-key keys/doormand.key\n"), 0o600)

	code, out, errs := runDoormand("keygen", "-D", "-f", cf)
	if code != 0 || !strings.Contains(errs, "wrote a new private key to "+keyFile) {
		t.Fatalf("keygen: exit %d stdout %q stderr %q", code, out, errs)
	}
	pub := onePublicKey(t, out)
	if fi, err := os.Stat(keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	if fi, _ := os.Stat(filepath.Dir(keyFile)); fi.Mode().Perm() != 0o700 {
		t.Errorf("key directory mode %v", fi.Mode())
	}
	key, err := config.LoadPrivateKey(keyFile, false)
	if err != nil || key.Public() != pub {
		t.Fatalf("the file holds another key: %v", err)
	}

	code, out, errs = runDoormand("pubkey", "-D", "--config", cf)
	if code != 0 || errs != "" || onePublicKey(t, out) != pub {
		t.Errorf("pubkey: exit %d stdout %q stderr %q", code, out, errs)
	}

	before, _ := os.ReadFile(keyFile)
	code, out, errs = runDoormand("keygen", "-D", "-f", cf)
	after, _ := os.ReadFile(keyFile)
	if code != 1 || out != "" || !strings.Contains(errs, "already exists") || !bytes.Equal(before, after) {
		t.Errorf("keygen over a key: exit %d stdout %q stderr %q", code, out, errs)
	}

	other := filepath.Join(dir, "other.key")
	code, out, errs = runDoormand("keygen", other)
	if code != 0 || onePublicKey(t, out) == pub {
		t.Errorf("keygen FILE: exit %d stdout %q stderr %q", code, out, errs)
	}
	if os.Geteuid() != 0 && !strings.Contains(errs, "doormand will refuse it unless run with -D") {
		t.Errorf("keygen as a user: no warning that doormand refuses the file: %q", errs)
	}
}

// TestKeyCommandErrors: usage errors, a missing key with the command that
// makes it, a broken configuration, and a key others may read.
func TestKeyCommandErrors(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "doormand.cf")
	keyFile := filepath.Join(dir, "site.key")
	os.WriteFile(cf, []byte("interface eth0\nprivate-key "+keyFile+"\n"), 0o600)
	bad := filepath.Join(dir, "bad.cf")
	os.WriteFile(bad, []byte("interface eth0\nmodern-window 0\n"), 0o600)
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"keygen", "-h"}, 0, "usage: doormand keygen"},
		{[]string{"pubkey", "--help"}, 0, "doormand pubkey [-D]"},
		{[]string{"keygen", "-Q"}, 2, "unknown shorthand flag: 'Q' in -Q"},
		{[]string{"keygen", "a", "b"}, 2, `doormand keygen: unexpected argument "b"`},
		{[]string{"pubkey", "-D", "-f", cf, "x"}, 2, `doormand pubkey: unexpected argument "x"`},
		{[]string{"pubkey", "-D", "-f", cf}, 1, "doormand pubkey: private key " + keyFile + " does not exist"},
		{[]string{"pubkey", "-D", "-f", cf}, 1, "make the key with: doormand keygen -f " + cf + "\n"},
		{[]string{"pubkey", "-D", "-f", bad}, 1, `bad.cf:2: modern-window "0": must be between 1s and 1h0m0s`},
		{[]string{"keygen", "-D", "-f", bad}, 1, `bad.cf:2: modern-window "0"`},
		{[]string{"keygen", "-D", "-f", filepath.Join(dir, "missing.cf")}, 1, "missing.cf does not exist"},
		{[]string{"keygen", filepath.Join(dir, "no", "dir", "k")}, 1, "no such file or directory"},
	} {
		code, out, errs := runDoormand(c.args...)
		if code != c.code || !strings.Contains(out+errs, c.contains) {
			t.Errorf("doormand %q: exit %d, output %q; want exit %d containing %q", c.args, code, out+errs, c.code, c.contains)
		}
	}

	k, _ := protocol.NewPrivateKey(strings.NewReader(strings.Repeat("d", 32)))
	if os.Geteuid() == 0 { // the ownership checks want root's files
		os.WriteFile(keyFile, []byte(k.Base64()+"\n"), 0o644)
		code, out, errs := runDoormand("pubkey", "-f", cf)
		if code != 1 || out != "" || !strings.Contains(errs, "chmod 600") || strings.Contains(errs, k.Base64()) {
			t.Errorf("a key others may read: exit %d stdout %q stderr %q", code, out, errs)
		}
		os.Remove(keyFile)
	}
	os.WriteFile(keyFile, []byte("# doorman\n"+k.Base64()[:40]+"\n"), 0o600)
	code, _, errs := runDoormand("pubkey", "-D", "-f", cf)
	if code != 1 || !strings.Contains(errs, keyFile+":2:") || strings.Contains(errs, k.Base64()[:40]) {
		t.Errorf("a broken key: exit %d stderr %q", code, errs)
	}
}
