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
	// lo and the script backend: --check finds nothing to say about the
	// host (no blockers to inspect, no device missing).
	for _, sc := range []string{"add", "del"} {
		os.WriteFile(filepath.Join(dir, sc), []byte("#!/bin/sh\n"), 0o700)
	}
	site := "guestlist " + guests + "\nhash-archive " + filepath.Join(dir, "replay") + "\npidfile " + filepath.Join(dir, "pid") +
		"\nfirewall-add " + filepath.Join(dir, "add") + "\nfirewall-del " + filepath.Join(dir, "del") + "\nlogfile " + filepath.Join(dir, "log") + "\n"
	os.WriteFile(good, []byte("interface lo\n"+site), 0o600)
	typo := filepath.Join(dir, "typo.cf")
	os.WriteFile(typo, []byte("interface lo\nwiatfor 5\n"+site), 0o600)
	noDev := filepath.Join(dir, "nodev.cf")
	os.WriteFile(noDev, []byte("interface dm-no-such0\n"+site), 0o600)
	misspelled := filepath.Join(dir, "misspelled.cf")
	os.WriteFile(misspelled, []byte("interfce lo\n"+site), 0o600)
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
		{[]string{"-D", "-f", typo, "--check"}, 3, `typo.cf:2: warning: "wiatfor": unknown keyword, ignored; did you mean "waitfor"?`},
		{[]string{"-D", "-f", noDev, "--check"}, 1, `interface "dm-no-such0": no such network device here (devices: lo`},
		{[]string{"-D", "-f", misspelled, "--check"}, 1, "misspelled.cf:1: error: interface: is required"},
		{[]string{"-D", "-f", bad, "--check"}, 1, `bad.cf:2: error: port "70000": must be 1-65535`},
	} {
		var out, errb bytes.Buffer
		code := run(c.args, &out, &errb)
		all := out.String() + errb.String()
		if code != c.code || !strings.Contains(all, c.contains) {
			t.Errorf("doormand %v: exit %d, output %q; want exit %d containing %q", c.args, code, all, c.code, c.contains)
		}
	}
	// --check created nothing: no log, no pid file, no replay store.
	for _, f := range []string{"log", "pid", "replay"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); err == nil {
			t.Errorf("--check created %s", f)
		}
	}
}
