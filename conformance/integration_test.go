//go:build linux

package conformance

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
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

// knownFailures are cases our own implementations fail today, with why;
// they are reported, not hidden: the test fails if one starts passing so
// the entry gets removed.
var knownFailures = map[string]map[string]string{}

func checkResults(t *testing.T, results []Result) {
	t.Helper()
	if sum := Summarize(results); sum.Pass == 0 {
		t.Errorf("nothing was tested: %s", sum.Problem())
	}
	for _, r := range results {
		t.Run(r.Impl+"/"+r.ID, func(t *testing.T) {
			known, isKnown := knownFailures[r.Impl][r.ID]
			switch {
			case r.Verdict == Fail && isKnown:
				t.Skipf("KNOWN FAILURE (%s): %s", known, r.Detail)
			case r.Verdict == Fail:
				t.Errorf("%s %s: %s", r.Req, r.Level, r.Detail)
			case r.Verdict == Error:
				t.Errorf("setup error: %s", r.Detail)
			case isKnown && r.Verdict == Pass:
				t.Errorf("listed as a known failure (%s) but passes: remove it from knownFailures", known)
			case r.Verdict == Skipped || r.Verdict == Unsupported:
				t.Skipf("%s: %s", r.Verdict, r.Detail)
			}
		})
	}
}

// lane is a sequence of suite runs in a topology of its own. Lanes run
// concurrently: the cases mostly wait (for doors, timers, probes), so
// this divides the wall time without loading the machine. They run as
// goroutines rather than parallel subtests, which -parallel (GOMAXPROCS)
// would limit to two at a time, and report through subtests afterwards.
type lane struct {
	name string
	runs []laneRun
}

type laneRun struct {
	impl, client string
	filter       string
	mutant       *mutant
}

type laneRunResult struct {
	run     laneRun
	results []Result
	err     error
}

func (l lane) exec(bin string) (out []laneRunResult, err error) {
	topo, err := NewTopology(context.Background(), "")
	if err != nil {
		return nil, err
	}
	defer topo.Close()
	for _, r := range l.runs {
		o := Options{Topology: topo, SpecDir: "../spec", Filter: regexp.MustCompile(r.filter)}
		if o.Impl, err = loadAdapter(r.impl, bin); err != nil {
			return out, err
		}
		if r.client != "" {
			if o.Client, err = loadAdapter(r.client, bin); err != nil {
				return out, err
			}
		}
		if m := r.mutant; m != nil {
			o.Impl.Name = "mutant-" + m.mutant
			o.Impl.Requires = []string{"mutantd", "nft"}
			o.Impl.Start = []string{`{{bin "mutantd"}}`, "-mutant", m.mutant, "-events", "{{.EventsFile}}", "-f", "{{.WorkDir}}/doormand.cf"}
			ids := append(append([]string{}, m.mustFail...), m.mustPass...)
			for i := range ids {
				ids[i] = regexp.QuoteMeta(ids[i])
			}
			o.Filter = regexp.MustCompile(`^(` + strings.Join(ids, "|") + `)$`)
		}
		res, err := RunSuite(context.Background(), o)
		out = append(out, laneRunResult{run: r, results: res, err: err})
	}
	return out, nil
}

func loadAdapter(name, bin string) (*Adapter, error) {
	a, err := LoadAdapter(filepath.Join("adapters", name))
	if err != nil {
		return nil, err
	}
	a.SearchPath = []string{bin}
	return a, nil
}

// The other backends and the worked example run the cases where they
// differ from the default: the firewall's part of silence and of every
// door state, restarts and reloads.
const (
	backendCases = `^(4\.2/knock-port-open-host|6\.1/|6\.2/|6\.6/close-after-long|6\.8/|6\.9/|12\.18/)`
	exampleCases = `^(2\.2/fields-at-limits|5\.5/replay-after-restart|5\.6/|6\.1/|6\.9/|6\.11/|9\.4/)`
)

// TestIntegrationDoormand runs the suite against doormand (every case with
// the nftables backend and the knock client, the backend-specific cases
// with iptables and the script interface), the worked example's adapter
// (adapters/exampled.toml, written from conformance/README.md alone), and
// the mutants, each only against the cases meant to catch it.
func TestIntegrationDoormand(t *testing.T) {
	needRoot(t)
	bin := buildTools(t, map[string]string{
		"doormand": "github.com/doorman-project/doorman/cmd/doormand",
		"knock":    "github.com/doorman-project/doorman/cmd/knock",
		"mutantd":  "github.com/doorman-project/doorman/conformance/testdata/mutants/mutantd",
		"exampled": "github.com/doorman-project/doorman/conformance/testdata/exampled",
	})
	var mutantRuns, modernMutantRuns []laneRun
	for i := range mutants {
		r := laneRun{impl: "doormand-nftables.toml", mutant: &mutants[i]}
		if strings.HasPrefix(mutants[i].mutant, "modern-") {
			modernMutantRuns = append(modernMutantRuns, r)
		} else {
			mutantRuns = append(mutantRuns, r)
		}
	}
	lanes := []lane{
		// The modern client cases (12.x/client-*) ride with the classic
		// ones, which leave their lane the shortest.
		{"nftables-packets", []laneRun{{impl: "doormand-nftables.toml", client: "knock.toml", filter: `^(2|3|4|11)\.|^12\.\d+/client-`}}},
		{"nftables-doors", []laneRun{{impl: "doormand-nftables.toml", filter: `^(5|6|7|8|9|10)\.`}}},
		{"nftables-modern", []laneRun{{impl: "doormand-nftables.toml", filter: `^12\.`}}},
		{"modern-mutants", modernMutantRuns},
		{"other-implementations", []laneRun{
			{impl: "doormand-iptables.toml", filter: backendCases},
			{impl: "doormand-script.toml", filter: backendCases},
			{impl: "exampled.toml", filter: exampleCases},
		}},
		{"mutants", mutantRuns},
	}
	outs := make([][]laneRunResult, len(lanes))
	errs := make([]error, len(lanes))
	took := make([]time.Duration, len(lanes))
	var wg sync.WaitGroup
	for i, l := range lanes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			outs[i], errs[i] = l.exec(bin)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	for i, l := range lanes {
		t.Logf("lane %s: %v", l.name, took[i].Round(100*time.Millisecond))
	}
	for i, l := range lanes {
		t.Run(l.name, func(t *testing.T) {
			if errors.Is(errs[i], ErrNoPrivilege) {
				t.Skipf("skipping: %v", errs[i])
			}
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			for _, r := range outs[i] {
				if r.err != nil {
					t.Errorf("%s: %v", r.run.impl, r.err)
					continue
				}
				if r.run.mutant != nil {
					t.Run(r.run.mutant.mutant, func(t *testing.T) { checkMutant(t, *r.run.mutant, r.results) })
					continue
				}
				checkResults(t, r.results)
			}
		})
	}
}

// mutant is a planted defect (conformance/testdata/mutants/mutantd) and
// the cases that must catch it; mustPass cases show what the suite did
// not see before the catching case existed, or that the mutant is
// otherwise a doorman; detail lists words the failure must contain.
type mutant struct {
	mutant   string
	mustFail []string
	mustPass []string
	detail   []string
	// notDetail lists words the failure must not contain (a case that
	// names what went wrong must not name what did not).
	notDetail []string
}

var mutants = []mutant{
	{mutant: "replay", mustFail: []string{"5.1/replay-same-source", "5.1/replay-other-source"}},
	{mutant: "mac", mustFail: []string{"4.1/bad-mac"}},
	{mutant: "never-close", mustFail: []string{"6.6/close-after-connection-ends"}},
	{mutant: "late-end", mustFail: []string{"6.6/close-after-long-connection"},
		mustPass: []string{"6.6/close-after-connection-ends"}},
	{mutant: "knock-port-open", mustFail: []string{"4.2/knock-port-open-host"}, mustPass: []string{"4.2/silence"},
		detail: []string{"ICMP"}},
	{mutant: "knock-port-reply", mustFail: []string{"4.2/silence", "4.2/knock-port-open-host"}, detail: []string{"UDP"}},
	{mutant: "no-dst-check", mustFail: []string{"4.4/not-own-address"},
		detail: []string{"loopback", OtherIfName}},
	{mutant: "no-checksum", mustFail: []string{"4.3/bad-checksums"}, detail: []string{"wrong UDP checksum over IPv4"}},
	{mutant: "full-admits", mustFail: []string{"5.4/full-store-refuses"}},
	{mutant: "lenient", mustFail: []string{"2.1/reject-vectors"}, detail: []string{"leading-zero-port", "trailing-junk"},
		notDetail: []string{"tag-short", "group-33-chars", "port-six-digits", "two-newlines", "crlf"}},

	// The modern protocol.
	{mutant: "modern-window", mustFail: []string{"12.14/time-window"}, mustPass: []string{"12.17/replay-and-older"},
		detail: []string{"ahead of the window", "behind the window", "1970", "largest time"}},
	{mutant: "modern-stale", mustFail: []string{"12.17/replay-and-older", "12.17/replay-after-restart"},
		mustPass: []string{"12.14/time-window"}},
	{mutant: "modern-volatile", mustFail: []string{"12.17/replay-after-restart", "12.17/replay-after-kill9"},
		mustPass: []string{"12.17/replay-and-older"}},
	{mutant: "modern-stamp-refused", mustFail: []string{"12.15/raced-from-another-address", "12.14/time-window"},
		detail: []string{"open for"}, mustPass: []string{"12.17/replay-and-older"}},
	{mutant: "modern-source", mustFail: []string{"12.15/raced-from-another-address"}, detail: []string{"raced from"},
		mustPass: []string{"12.15/as-seen"}},
	{mutant: "modern-pin", mustFail: []string{"12.18/pinned-source-port"}},
	{mutant: "modern-rate", mustFail: []string{"12.12/per-source-rate"}, detail: []string{"after the first of a burst", "/64"}},
	{mutant: "modern-mac1", mustFail: []string{"12.8/reject-vectors"}, detail: []string{"tamper-mac1-first", "tamper-mac1-last", "mac1-zero"},
		notDetail: []string{"tamper-request-remac", "ephemeral-zero", "port-zero", "made-for-server-b"}},
}

func checkMutant(t *testing.T, m mutant, results []Result) {
	got := map[string]Result{}
	for _, r := range results {
		got[r.ID] = r
	}
	for _, id := range m.mustFail {
		r, ok := got[id]
		if !ok || r.Verdict != Fail {
			t.Errorf("mutant %s: case %s = %v (%s), want fail", m.mutant, id, r.Verdict, r.Detail)
			continue
		}
		for _, w := range m.detail {
			if !strings.Contains(r.Detail, w) {
				t.Errorf("mutant %s: case %s fails without naming %q: %s", m.mutant, id, w, r.Detail)
			}
		}
		for _, w := range m.notDetail {
			if strings.Contains(r.Detail, w) {
				t.Errorf("mutant %s: case %s names %q, which the mutant gets right: %s", m.mutant, id, w, r.Detail)
			}
		}
		t.Logf("mutant %s caught by %s: %s", m.mutant, id, r.Detail)
	}
	for _, id := range m.mustPass {
		if r := got[id]; r.Verdict != Pass {
			t.Errorf("mutant %s: case %s = %v (%s), want pass", m.mutant, id, r.Verdict, r.Detail)
		}
	}
}

// TestIntegrationNotInstalled checks that an adapter whose program is
// missing skips every case without touching the system, and that such a
// run does not count as a success.
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
	if p := Summarize(results).Problem(); !strings.Contains(p, "no case was run") {
		t.Errorf("a run with every case skipped: problem %q, want one saying no case was run", p)
	}
}
