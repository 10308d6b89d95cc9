package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/knocker"
	"github.com/doorman-project/doorman/protocol"
)

// pubkeyLine checks that out is one public key alone on one line, as wg
// pubkey prints it (MODERN-12.23), and returns it.
func pubkeyLine(t *testing.T, out string) protocol.PublicKey {
	t.Helper()
	text, ok := strings.CutSuffix(out, "\n")
	if !ok || strings.Contains(text, "\n") {
		t.Fatalf("stdout %q is not one line", out)
	}
	k, err := protocol.ParsePublicKey(text)
	if err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	return k
}

// TestKeygenPubkey: knock keygen writes a private key only its owner may
// read to the key file knock uses, never over an existing one, and prints
// its public key; knock pubkey prints the same key (MODERN-12.2/2,
// MODERN-12.23).
func TestKeygenPubkey(t *testing.T) {
	r := knock(t, "", "", "keygen")
	keyFile := knocker.DefaultKeyPath()
	if r.code != 0 || !strings.Contains(r.stderr, "wrote a new private key to "+keyFile) {
		t.Fatalf("keygen: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	pub := pubkeyLine(t, r.stdout)
	key, err := knocker.LoadPrivateKey(keyFile)
	if err != nil || key.Public() != pub {
		t.Fatalf("the key file holds another key: %v", err)
	}
	if fi, _ := os.Stat(keyFile); runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	home := filepath.Dir(keyFile)

	// pubkey, with the default file and with it named; the same HOME.
	for _, args := range [][]string{{"pubkey"}, {"pubkey", keyFile}, {"pubkey", "--", keyFile}} {
		out := runIn(t, home, args...)
		if out.code != 0 || out.stderr != "" || pubkeyLine(t, out.stdout) != pub {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, out.code, out.stdout, out.stderr)
		}
	}

	// Never over an existing key: the file is unchanged.
	before, _ := os.ReadFile(keyFile)
	out := runIn(t, home, "keygen")
	after, _ := os.ReadFile(keyFile)
	if out.code != exitUsage || out.stdout != "" || !strings.Contains(out.stderr, "already exists") ||
		!strings.Contains(out.stderr, "knock pubkey "+keyFile) || string(before) != string(after) {
		t.Errorf("keygen over a key: exit %d stdout %q stderr %q", out.code, out.stdout, out.stderr)
	}

	// A key made elsewhere: keygen says how to use it.
	other := filepath.Join(home, "work.key")
	out = runIn(t, home, "keygen", other)
	if out.code != 0 || !strings.Contains(out.stderr, "knock reads its key from "+keyFile) || !strings.Contains(out.stderr, "    private-key "+other+"\n") {
		t.Errorf("keygen FILE: exit %d stdout %q stderr %q", out.code, out.stdout, out.stderr)
	}
	otherPub := pubkeyLine(t, out.stdout)
	if otherPub == pub {
		t.Error("two keygens made the same key")
	}

	// The configuration's private-key record is the default FILE, also
	// with -f; relative to the configuration's directory.
	cfg := filepath.Join(home, "cf", "knock.cf")
	os.Mkdir(filepath.Dir(cfg), 0o700)
	os.WriteFile(cfg, []byte("private-key ../work.key\n"), 0o600)
	if out = runIn(t, home, "pubkey", "-f", cfg); out.code != 0 || pubkeyLine(t, out.stdout) != otherPub {
		t.Errorf("pubkey -f: exit %d stdout %q stderr %q", out.code, out.stdout, out.stderr)
	}
	os.WriteFile(cfg, []byte("private-key site.key\n"), 0o600)
	out = runIn(t, home, "keygen", "--config="+cfg)
	if out.code != 0 || !strings.Contains(out.stderr, "to "+filepath.Join(home, "cf", "site.key")+";") || strings.Contains(out.stderr, "private-key") {
		t.Errorf("keygen -f: exit %d stdout %q stderr %q", out.code, out.stdout, out.stderr)
	}
}

// TestKeyCommandErrors: bad command lines, missing or unsafe files, and
// a configuration that cannot be read when it is needed.
func TestKeyCommandErrors(t *testing.T) {
	home := t.TempDir()
	keyFile := filepath.Join(home, "k.key")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"keygen", "a", "b"}, "knock keygen: usage: want at most one key file, have 2 operands\nTry 'knock keygen --help'.\n"},
		{[]string{"pubkey", "--secret", "x"}, "knock pubkey: usage: unknown option --secret\n"},
		{[]string{"pubkey", "-f"}, "knock pubkey: usage: -f needs a value\n"},
		{[]string{"pubkey", keyFile}, "knock pubkey: private key: open " + keyFile + ": no such file or directory\n"},
		{[]string{"keygen", filepath.Join(home, "no", "dir", "k")}, "knock keygen: private key: open " + filepath.Join(home, "no", "dir", "k")},
		{[]string{"pubkey", "-f", filepath.Join(home, "missing.cf")}, "knock pubkey: config: open " + filepath.Join(home, "missing.cf")},
	} {
		r := runIn(t, home, tc.args...)
		if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, tc.want) {
			t.Errorf("knock %q: exit %d stdout %q stderr %q; want %q", tc.args, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if r := runIn(t, home, "keygen", "-h"); r.code != 0 || !strings.HasPrefix(r.stdout, "usage: knock keygen") {
		t.Errorf("keygen -h: exit %d stdout %q", r.code, r.stdout)
	}

	k, _ := protocol.NewPrivateKey(strings.NewReader(strings.Repeat("k", 32)))
	os.WriteFile(keyFile, []byte("# a comment\n"+k.Base64()[:40]+"\n"), 0o600)
	r := runIn(t, home, "pubkey", keyFile)
	if r.code != exitUsage || !strings.HasPrefix(r.stderr, "knock pubkey: "+keyFile+":2: private key: ") || strings.Contains(r.stderr, k.Base64()[:40]) {
		t.Errorf("broken key file: exit %d stderr %q", r.code, r.stderr)
	}
	if runtime.GOOS != "windows" {
		os.WriteFile(keyFile, []byte(k.Base64()+"\n"), 0o600)
		os.Chmod(keyFile, 0o644)
		if r := runIn(t, home, "pubkey", keyFile); r.code != exitUsage || !strings.Contains(r.stderr, "chmod 600 "+keyFile) {
			t.Errorf("key readable by others: exit %d stderr %q", r.code, r.stderr)
		}
		cfg := filepath.Join(home, ".knockcf")
		os.WriteFile(cfg, []byte("private-key k.key\n"), 0o644)
		if r := runIn(t, home, "pubkey"); r.code != exitUsage || !strings.Contains(r.stderr, "chmod 600 "+cfg) {
			t.Errorf("config readable by others: exit %d stderr %q", r.code, r.stderr)
		}
		os.Chmod(keyFile, 0o600)
		if r := runIn(t, home, "pubkey", keyFile); r.code != 0 || pubkeyLine(t, r.stdout) != k.Public() {
			t.Errorf("an explicit FILE needs no configuration: exit %d stderr %q", r.code, r.stderr)
		}
	}
}

// TestKeygenHostName: only the first argument is a command; a host named
// keygen is written with a final dot, and keygen elsewhere is a host.
func TestKeygenHostName(t *testing.T) {
	for _, args := range [][]string{
		{"-g", "alice", "-s", "s3cretKnock", "--dry-run", vecFlags, "keygen.", "2222"},
		{"--dry-run", "-g", "alice", "-s", "s3cretKnock", vecFlags, "pubkey", "2222"},
	} {
		r := knock(t, "", "", args...)
		if r.code != 0 || r.stdout != vecOut {
			t.Errorf("%q: exit %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
	}
}

// runIn runs the program with HOME set to home and no stdin.
func runIn(t *testing.T, home string, args ...string) result {
	t.Helper()
	t.Setenv("HOME", home)
	t.Setenv("USERPROFILE", home)
	return (&modernSite{home: home}).knock("", args...)
}
