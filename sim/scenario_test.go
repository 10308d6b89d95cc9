//go:build linux

package sim

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/internal/doormandtest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	doormandtest.RemoveBuilt()
	os.Exit(code)
}

func TestScenarioRegistry(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range Scenarios() {
		if s.Name == "" || s.Description == "" || s.Run == nil || seen[s.Name] {
			t.Errorf("bad or duplicate scenario %+v", s)
		}
		seen[s.Name] = true
		if got, err := LookupScenario(s.Name); err != nil || got.Name != s.Name {
			t.Errorf("LookupScenario(%q) = %v, %v", s.Name, got.Name, err)
		}
	}
	if _, err := LookupScenario("nope"); err == nil {
		t.Error("LookupScenario(nope) found something")
	}
}

func TestScenarioRunCountsFailures(t *testing.T) {
	var b strings.Builder
	r := &Run{out: &b, start: time.Now()}
	r.Step("do %s", "x")
	r.Check(true, "fine")
	if r.Failed() {
		t.Fatal("failed after a passing check")
	}
	r.Check(false, "broken %d", 1)
	if !r.Failed() {
		t.Fatal("not failed after a failing check")
	}
	out := b.String()
	for _, want := range []string{"s] do x\n", "PASS fine\n", "FAIL broken 1\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("transcript lacks %q:\n%s", want, out)
		}
	}
}

// TestScenarios plays every built-in scenario as root.
func TestScenarios(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("scenarios need root for network namespaces and nftables")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("scenarios need nft")
	}
	bin := doormandtest.Binaries(t)
	for _, s := range ScenariosFor(LightLoad()) {
		t.Run(s.Name, func(t *testing.T) {
			var b strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			err := RunScenario(ctx, s, RunConfig{Bin: bin, Out: &b, Prefix: "dmscentest"})
			t.Log("\n" + b.String())
			if err != nil {
				t.Fatal(err)
			}
		})
	}
}
