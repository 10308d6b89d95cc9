//go:build linux

package sim

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
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
	r.Unsupported("no events", "seen %s", "y")
	if r.Failed() {
		t.Fatal("failed after an unsupported check")
	}
	r.Check(false, "broken %d", 1)
	if !r.Failed() {
		t.Fatal("not failed after a failing check")
	}
	if len(r.results) != 3 || r.results[1].Unsupported != "no events" || r.results[1].OK || r.checks != 2 {
		t.Errorf("results %+v, %d checks", r.results, r.checks)
	}
	out := b.String()
	for _, want := range []string{"s] do x\n", "PASS fine\n", "FAIL broken 1\n", "UNSUPPORTED seen y (no events)\n"} {
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
	kernel := &Kernel{Prefix: "dmscenprobe"}
	for _, s := range ScenariosFor(LightLoad()) {
		t.Run(s.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			res := Play(ctx, s, RunConfig{Bin: bin, Prefix: "dmscentest", Kernel: kernel})
			t.Log("\n" + res.Transcript)
			switch res.Verdict {
			case VerdictPass:
			case VerdictSkipped:
				t.Skip(res.Reason)
			default:
				t.Fatalf("%s: %s", res.Verdict, res.Reason)
			}
		})
	}
}

// TestImplLacks: what an adapter cannot serve is said before anything is
// built; the built doormand serves everything.
func TestImplLacks(t *testing.T) {
	a := &adapter.Adapter{Name: "x"}
	if why := implLacks(nil, []Need{NeedDoormand, NeedEvents}); why != "" {
		t.Errorf("the built doormand lacks: %s", why)
	}
	if why := implLacks(a, []Need{NeedNftables}); why != "" {
		t.Errorf("an adapter lacks a kernel need: %s", why)
	}
	if why := implLacks(a, []Need{NeedEvents}); !strings.Contains(why, "doormand_events") {
		t.Errorf("an adapter without doormand_events: %q", why)
	}
	a.DoormandEvents = true
	if why := implLacks(a, []Need{NeedEvents}); why != "" {
		t.Errorf("an adapter with doormand_events: %q", why)
	}
	if why := implLacks(a, []Need{NeedDoormand}); why == "" {
		t.Error("an adapter stands in for the built doormand")
	}
}

// TestIntegrationKernel: this machine's kernel has what every scenario
// needs (CI's and the developers' machines are meant to), and the probe
// leaves no namespace behind.
func TestIntegrationKernel(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	k := &Kernel{Prefix: "dmprobetest"}
	if why := k.Lacks(context.Background(), []Need{NeedNftables, NeedNftNAT, NeedTun, NeedMacvlan, NeedPacket}); why != "" {
		t.Fatal(why)
	}
	if left, err := netsim.Sweep("dmprobetest"); err != nil || len(left) > 0 {
		t.Errorf("the probe left %v (%v)", left, err)
	}
}
