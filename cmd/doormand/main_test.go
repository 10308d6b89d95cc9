package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFlags covers the command line without starting a daemon: help,
// version, an unknown flag, a stray argument, a missing or broken
// configuration, and --check.
func TestFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.cf")
	guests := filepath.Join(dir, "guests")
	os.WriteFile(good, []byte("interface eth0\nguestlist "+guests+"\nhash-archive "+filepath.Join(dir, "replay")+"\n"), 0o600)
	os.WriteFile(guests, []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	bad := filepath.Join(dir, "bad.cf")
	os.WriteFile(bad, []byte("interface eth0\nport 70000\n"), 0o600)
	for _, c := range []struct {
		args     []string
		code     int
		contains string
	}{
		{[]string{"-h"}, 0, "usage: doormand"},
		{[]string{"--help"}, 0, "--import-archive"},
		{[]string{"-v"}, 0, "doormand "},
		{[]string{"--version"}, 0, " (protocols: classic 1.0/Doorman 0.81, modern 2)\n"},
		{[]string{"-h"}, 0, "doormand keygen [-D] [-f config-file] [FILE]"},
		{[]string{"-h"}, 0, "doormand pubkey"},
		{[]string{"-Q"}, 2, "unknown shorthand flag: 'Q' in -Q"},
		{[]string{"--nope"}, 2, "unknown flag: --nope"},
		{[]string{"-f"}, 2, "flag needs an argument: 'f' in -f"},
		{[]string{"-DX", "--config=" + filepath.Join(dir, "missing.cf")}, 1, "missing.cf"},
		{[]string{"-D", "-f", good, "--events"}, 2, "flag needs an argument: --events"},
		{[]string{"-D", "stray"}, 2, `unexpected argument "stray"`},
		{[]string{"-D", "-f", filepath.Join(dir, "missing.cf")}, 1, "missing.cf"},
		{[]string{"-D", "-f", bad}, 1, `bad.cf:2: port "70000": must be 1-65535`},
		{[]string{"-D", "-f", good, "--check"}, 0, "ok (1 guests, 0 modern)"},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		all := out.String() + errb.String()
		if code != c.code || !strings.Contains(all, c.contains) {
			t.Errorf("doormand %v: exit %d, output %q; want exit %d containing %q", c.args, code, all, c.code, c.contains)
		}
	}
}
