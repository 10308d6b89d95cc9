//go:build linux

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func runMain(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestExitWhenNothingRan: a run that tests nothing must not pass CI.
func TestExitWhenNothingRan(t *testing.T) {
	broken := filepath.Join(t.TempDir(), "broken.toml")
	err := os.WriteFile(broken, []byte("name = \"broken\"\nkind = \"daemon\"\nrequires = [\"no-such-daemon-anywhere\"]\nstart = [\"{{bin \\\"no-such-daemon-anywhere\\\"}}\"]\n"), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	spec := abs(t, "../../spec")
	for _, c := range []struct {
		name string
		args []string
		msg  string
	}{
		{"wrong requires", []string{"--impl", broken, "--spec", spec}, "no case was run"},
		{"--run nomatch", []string{"--impl", abs(t, "../../conformance/adapters/knock.toml"), "--run", "nomatch", "--spec", spec}, "no case was selected"},
	} {
		code, _, stderr := runMain(t, c.args...)
		if code != 2 || !strings.Contains(stderr, c.msg) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", c.name, code, stderr, c.msg)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"--bogus"}, {"--impl", "/nonexistent.toml"}, {"--impl", "x", "--run", "("}} {
		if code, _, _ := runMain(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
	code, _, stderr := runMain(t, "--help")
	if code != 0 || !strings.Contains(stderr, "conformance/README.md") || !strings.Contains(stderr, "Exit status") {
		t.Errorf("--help: exit %d:\n%s", code, stderr)
	}
}

// TestCoverageListsEverySpecID: --coverage lists every requirement ID of
// the spec and exits 0 when each has a case or a reason.
func TestCoverageListsEverySpecID(t *testing.T) {
	spec, err := os.ReadFile("../../spec/doorman.md")
	if err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runMain(t, "--coverage", "--spec", "../../spec")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	ids := regexp.MustCompile(`(?m)(?:^|\()\*\*((?:CLASSIC|MODERN)-\d+\.\d+(?:/\d+)?)\*\*`).FindAllStringSubmatch(string(spec), -1)
	if len(ids) < 70 {
		t.Fatalf("%d IDs in the spec", len(ids))
	}
	for _, m := range ids {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(m[1]) + ` `).MatchString(out) {
			t.Errorf("%s missing from --coverage", m[1])
		}
	}
}

// TestIntegrationRelativePath: a --path relative to where the suite runs
// works for the client cases (it used to fail every one with
// `exec of "bin/knock" failed`).
func TestIntegrationRelativePath(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	adapter, spec := abs(t, "../../conformance/adapters/knock.toml"), abs(t, "../../spec")
	dir := t.TempDir()
	if out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "bin", "knock"), "github.com/doorman-project/doorman/cmd/knock").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	t.Chdir(dir)
	code, out, stderr := runMain(t, "--impl", adapter, "--path", "bin", "--run", `^2\.1/client-payload-format$`, "--spec", spec)
	if code != 0 {
		t.Errorf("exit %d\n%s\n%s", code, out, stderr)
	}
}
