//go:build linux

package conformance

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
)

// buildTools builds the named main packages of the module into one
// directory and returns it.
func buildTools(t *testing.T, pkgs map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, pkg := range pkgs {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	return dir
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs the ip command")
	}
}

func loadShipped(t *testing.T, name, bin string) *Adapter {
	t.Helper()
	a, err := LoadAdapter(filepath.Join("adapters", name))
	if err != nil {
		t.Fatal(err)
	}
	a.SearchPath = []string{bin}
	return a
}

// knownFailures are cases our own implementation fails today, with why;
// they are reported, not hidden: the test fails if one starts passing so
// the entry gets removed.
var knownFailures = map[string]map[string]string{}

func checkResults(t *testing.T, results []Result) {
	t.Helper()
	for _, r := range results {
		t.Run(r.Impl+"/"+r.ID, func(t *testing.T) {
			known, isKnown := knownFailures[r.Impl][r.ID]
			switch {
			case r.Verdict == Fail && isKnown:
				t.Skipf("KNOWN FAILURE (%s): %s", known, r.Detail)
			case r.Verdict == Fail:
				t.Errorf("%s %s: %s", r.Req, r.Level, r.Detail)
			case isKnown && r.Verdict == Pass:
				t.Errorf("listed as a known failure (%s) but passes: remove it from knownFailures", known)
			case r.Verdict == Skipped || r.Verdict == Unsupported:
				t.Skipf("%s: %s", r.Verdict, r.Detail)
			}
		})
	}
}

func runOrSkip(t *testing.T, o Options) []Result {
	t.Helper()
	results, err := RunSuite(context.Background(), o)
	if errors.Is(err, ErrNoPrivilege) {
		t.Skipf("skipping: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return results
}

func TestIntegrationDoormand(t *testing.T) {
	needRoot(t)
	bin := buildTools(t, map[string]string{
		"doormand": "github.com/doorman-project/doorman/cmd/doormand",
		"knock":    "github.com/doorman-project/doorman/cmd/knock",
	})
	for _, name := range []string{"doormand-nftables.toml", "doormand-iptables.toml", "doormand-script.toml", "knock.toml"} {
		a := loadShipped(t, name, bin)
		results := runOrSkip(t, Options{Impl: a, SpecDir: "../spec"})
		if len(results) == 0 {
			t.Fatalf("%s: no results", name)
		}
		checkResults(t, results)
	}
}

// TestIntegrationNotInstalled checks that an adapter whose program is
// missing skips every case without touching the system.
func TestIntegrationNotInstalled(t *testing.T) {
	a := loadShipped(t, "doorman-0.81.toml", t.TempDir())
	if a.Missing() == "" {
		t.Skip("doormand-0.81 is installed here")
	}
	results, err := RunSuite(context.Background(), Options{Impl: a, SpecDir: "../spec"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Verdict != Skipped || !regexp.MustCompile(`not installed`).MatchString(r.Detail) {
			t.Errorf("%s: %s %s", r.ID, r.Verdict, r.Detail)
		}
	}
}

// TestIntegrationMutants runs deliberately broken daemons (mutantd: the
// real engine with one seam broken) and checks that the matching cases fail.
func TestIntegrationMutants(t *testing.T) {
	needRoot(t)
	bin := buildTools(t, map[string]string{
		"mutantd": "github.com/doorman-project/doorman/conformance/testdata/mutants/mutantd",
	})
	mutants := []struct {
		mutant   string
		mustFail []string
		run      string
	}{
		{"replay", []string{"5.1/replay-same-source", "5.1/replay-other-source", "5.5/replay-after-restart"}, `^(5\.|6\.1/)`},
		{"mac", []string{"4.1/bad-mac"}, `^(4\.1/bad-mac|6\.1/)`},
		{"never-close", []string{"6.3/waitfor-expiry", "6.6/close-after-connection-ends"}, `^(6\.[136]/)`},
	}
	for _, m := range mutants {
		t.Run(m.mutant, func(t *testing.T) {
			a := loadShipped(t, "doormand-nftables.toml", bin)
			a.Name = "mutant-" + m.mutant
			a.Requires = []string{"mutantd", "nft"}
			a.Start = []string{`{{bin "mutantd"}}`, "-mutant", m.mutant, "-f", "{{.WorkDir}}/doormand.cf"}
			results := runOrSkip(t, Options{Impl: a, SpecDir: "../spec", Filter: regexp.MustCompile(m.run)})
			got := map[string]Result{}
			for _, r := range results {
				got[r.ID] = r
			}
			for _, id := range m.mustFail {
				if r, ok := got[id]; !ok || r.Verdict != Fail {
					t.Errorf("mutant %s: case %s = %v (%s), want fail", m.mutant, id, r.Verdict, r.Detail)
				} else {
					t.Logf("mutant %s caught by %s: %s", m.mutant, id, r.Detail)
				}
			}
			// The sanity case must still pass: the mutant is otherwise a doorman.
			if r := got["6.1/opens-exactly-requested"]; r.Verdict != Pass {
				t.Errorf("mutant %s: 6.1/opens-exactly-requested = %v (%s), want pass", m.mutant, r.Verdict, r.Detail)
			}
		})
	}
}
