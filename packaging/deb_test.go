package packaging

import (
	"os/exec"
	"strings"
	"testing"
)

// TestCopyrightNamesEveryModule keeps the Debian copyright file's list of
// the Go modules linked into the packaged programs complete: a new
// dependency of doormand or knock fails here until its license is listed.
func TestCopyrightNamesEveryModule(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command in PATH to list the packaged programs' modules")
	}
	out, err := exec.Command(goTool, "list", "-deps", "-f", "{{with .Module}}{{.Path}}{{end}}",
		"../cmd/doormand", "../cmd/knock").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	listed := map[string]bool{}
	for _, w := range strings.FieldsFunc(readFile(t, "deb/copyright"), func(r rune) bool { return r == ' ' || r == ',' || r == '\n' }) {
		listed[w] = true
	}
	seen := map[string]bool{}
	for _, m := range strings.Fields(string(out)) {
		if seen[m] || m == "github.com/doorman-project/doorman" {
			continue
		}
		seen[m] = true
		if !listed[m] {
			t.Errorf("packaging/deb/copyright does not list module %s, linked into doormand or knock: add it under its license", m)
		}
	}
	if len(seen) < 5 {
		t.Errorf("go list found only the modules %v; want the dependencies of doormand and knock", seen)
	}
}
