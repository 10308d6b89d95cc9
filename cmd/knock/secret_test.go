package main

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// secretFile writes body to a file with mode and returns its path.
func secretFile(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSecretSources: --secret-file and --secret-stdin give the secret
// without showing it in ps (CLASSIC-11.5/2), and win over the config's
// secret record.
func TestSecretSources(t *testing.T) {
	file := secretFile(t, "s3cretKnock\n", 0o600)
	crlf := secretFile(t, "s3cretKnock\r\n", 0o400)
	wrongCfg := "group alice\nsecret wrong\n"
	for _, tc := range []struct {
		name, cfg, stdin string
		args             []string
	}{
		{"--secret-file", "", "", []string{"-g", "alice", "--secret-file", file}},
		{"--secret-file=", "", "", []string{"-galice", "--secret-file=" + file}},
		{"--secret-file crlf, mode 400", "", "", []string{"-galice", "--secret-file", crlf}},
		{"--secret-file over config", wrongCfg, "", []string{"--secret-file", file}},
		{"--secret-stdin", "", "s3cretKnock\n", []string{"-g", "alice", "--secret-stdin"}},
		{"--secret-stdin without newline", "", "s3cretKnock", []string{"-g", "alice", "--secret-stdin"}},
		{"--secret-stdin over config", wrongCfg, "s3cretKnock\n", []string{"--secret-stdin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{}, tc.args...), "--dry-run", vecFlags, "host", "2222")
			r := knock(t, tc.cfg, tc.stdin, args...)
			if r.code != 0 || r.stdout != vecOut {
				t.Fatalf("exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
}

// TestSecretSourceErrors: a secret file or line that cannot be used is a
// configuration error (exit 2) naming the file and the fix (CLASSIC-11.5/3),
// and never showing the secret.
func TestSecretSourceErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	empty := secretFile(t, "", 0o600)
	blank := secretFile(t, "\n", 0o600)
	twoLines := secretFile(t, "s3cretKnock\ngroup alice\n", 0o600)
	trailingSpace := secretFile(t, "s3cretKnock \n", 0o600)
	cases := []struct {
		name, stdin string
		args        []string
		want        string
	}{
		{"missing file", "", []string{"--secret-file", missing}, "--secret-file: open " + missing},
		{"empty file", "", []string{"--secret-file", empty}, empty + ": no secret: empty secret"},
		{"empty line in file", "", []string{"--secret-file", blank}, blank + ": no secret: empty secret"},
		{"two lines", "", []string{"--secret-file", twoLines}, twoLines + ": not a secret alone on one line: more than one line"},
		{"trailing space", "", []string{"--secret-file", trailingSpace}, "character 12 of the secret is not a letter"},
		{"directory", "", []string{"--secret-file", t.TempDir()}, "not a regular file"},
		{"empty stdin line", "\nrest", []string{"--secret-stdin"}, "empty secret"},
		{"no stdin", "", []string{"--secret-stdin"}, "reading the secret from stdin"},
	}
	if runtime.GOOS != "windows" {
		for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
			p := secretFile(t, "s3cretKnock\n", mode)
			cases = append(cases, struct {
				name, stdin string
				args        []string
				want        string
			}{"mode " + mode.String(), "", []string{"--secret-file", p}, "fix with: chmod 600 " + p})
		}
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(append([]string{"-g", "alice"}, tc.args...), "--dry-run", "host", "2222")
			r := knock(t, "", tc.stdin, args...)
			if r.code != exitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "knock: ") || !strings.Contains(r.stderr, tc.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want 2 and %q", r.code, r.stdout, r.stderr, tc.want)
			}
			if strings.Contains(r.stderr, "s3cret") {
				t.Errorf("the message shows the secret: %q", r.stderr)
			}
		})
	}
}

// TestSecretStdinLeavesTheRest: --secret-stdin takes one line; the run
// program gets the rest of stdin.
func TestSecretStdinLeavesTheRest(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("uses sh")
	}
	u, kp := receiver(t, "udp4", "127.0.0.1:0")
	r := knock(t, "", "s3cretKnock\nfor the program\n", "-g", "alice", "--secret-stdin", "-p", kp, "-r", "cat", "127.0.0.1", "ssh")
	if r.code != 0 || r.stdout != "for the program\n" {
		t.Fatalf("exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	readKnock(t, u) // signed with the secret from stdin
}
