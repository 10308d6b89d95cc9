//go:build linux

package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/sim"
)

func TestMain(m *testing.M) {
	code := m.Run()
	doormandtest.RemoveBuilt()
	os.Exit(code)
}

// runCLI runs doorman-sim with args and returns its exit status and output.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestListTags(t *testing.T) {
	code, out, _ := runCLI(t, "list", "--tag", "quick")
	if code != exitPass {
		t.Fatalf("list --tag quick: exit %d", code)
	}
	var listed []string
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) < 3 || !slices.Contains(strings.Split(f[1], ","), sim.TagQuick) {
			t.Errorf("list --tag quick printed %q: want NAME TAGS DESCRIPTION with the quick tag", line)
			continue
		}
		listed = append(listed, f[0])
	}
	var want []string
	for _, s := range sim.Scenarios() {
		if s.HasTag(sim.TagQuick) {
			want = append(want, s.Name)
		}
	}
	if !slices.Equal(listed, want) {
		t.Errorf("list --tag quick = %v, want %v", listed, want)
	}
	if _, all, _ := runCLI(t, "list"); strings.Count(all, "\n") != len(sim.Scenarios()) {
		t.Errorf("list printed %d lines for %d scenarios", strings.Count(all, "\n"), len(sim.Scenarios()))
	}
}

func TestSelectScenarios(t *testing.T) {
	got, err := selectScenarios([]string{"crash"}, []string{sim.TagNetwork}, sim.FloodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range got {
		names = append(names, s.Name)
		if s.Name != "crash" && !s.HasTag(sim.TagNetwork) {
			t.Errorf("selected %s, which is neither named nor tagged network", s.Name)
		}
	}
	if !slices.Contains(names, "crash") || !slices.Contains(names, "nat") || slices.Contains(names, "happy") {
		t.Errorf("crash + --tag network selected %v", names)
	}
	if n := len(names); n != len(slices.Compact(slices.Clone(names))) {
		t.Errorf("a scenario selected twice: %v", names)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"run"},
		{"run", "nosuch"},
		{"bogus"},
		{"--nosuchflag", "list"},
		{"list", "happy"},
		{"run", "happy", "--rate", "0"},
		{"run", "happy", "--impl", "testdata/nonexistent.toml"},
		{"run", "happy", "--impl", "../../conformance/adapters/knock.toml"}, // a client adapter
		{"run", "happy", "--impl", "testdata/mutant-replay.toml", "--impl", "testdata/mutant-replay.toml"},
	} {
		code, _, errOut := runCLI(t, args...)
		if code != exitUsage || errOut == "" {
			t.Errorf("doorman-sim %q: exit %d, stderr %q; want exit 2 with a message", args, code, errOut)
		}
	}
}

// TestNothingRan: a selection that matches nothing is no pass, and the
// reports still say so.
func TestNothingRan(t *testing.T) {
	dir := t.TempDir()
	js, ju := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml")
	code, out, _ := runCLI(t, "run", "--tag", "nosuch", "--json", js, "--junit", ju, "--bin", dir)
	if code != exitUsage || !strings.Contains(out, "nothing ran") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	rep := readJSON(t, js)
	if rep.ExitStatus != exitUsage || len(rep.Results) != 0 || !strings.Contains(rep.Problem, "no scenario selected") {
		t.Errorf("JSON: exit %d, %d results, problem %q", rep.ExitStatus, len(rep.Results), rep.Problem)
	}
	if s := readJUnit(t, ju); s.Tests != 0 {
		t.Errorf("JUnit: %d tests", s.Tests)
	}
}

// fakeReport is a run of two implementations over two scenarios with
// every verdict.
func fakeReport() *report {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	happy, crash := sim.Scenario{Name: "happy", Tags: []string{sim.TagQuick}}, sim.Scenario{Name: "crash", Tags: []string{sim.TagQuick}}
	rep := &report{Started: start, Duration: 10 * time.Second, Scenarios: []string{"happy", "crash"},
		Impls: []implRecord{{Name: "a"}, {Name: "b"}}}
	rep.add(happy, sim.Result{Scenario: "happy", Impl: "a", Verdict: sim.VerdictPass, Start: start, Duration: 5 * time.Second,
		Checks:  []sim.CheckResult{{Text: "door opened", OK: true}, {Text: "second refused", Unsupported: "a gap"}},
		Figures: []sim.Figure{{Name: "p50", Value: 1.5, Unit: "ms"}}})
	rep.add(crash, sim.Result{Scenario: "crash", Impl: "a", Verdict: sim.VerdictFail, Reason: "1 of 2 checks failed: replays refused",
		Start: start, Duration: 2 * time.Second, Dir: "/tmp/x/a/crash", Transcript: "=== scenario crash\n[+1.000s] FAIL replays refused\n",
		Checks: []sim.CheckResult{{Text: "door opened", OK: true}, {Text: "replays refused", At: time.Second}}})
	rep.add(happy, sim.Result{Scenario: "happy", Impl: "b", Verdict: sim.VerdictSkipped, Reason: "the kernel lacks tun"})
	rep.add(crash, sim.Result{Scenario: "crash", Impl: "b", Verdict: sim.VerdictUnsupported, Reason: "needs events"})
	return rep
}

func TestJUnitParses(t *testing.T) {
	rep := fakeReport()
	rep.exitStatus(false)
	var b bytes.Buffer
	if err := rep.writeJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b.Bytes(), &s); err != nil {
		t.Fatalf("JUnit does not parse: %v\n%s", err, b.String())
	}
	if s.Tests != 4 || s.Failures != 1 || s.Skipped != 2 || len(s.Suites) != 2 {
		t.Fatalf("testsuites: %d tests, %d failures, %d skipped, %d suites; want 4, 1, 2, 2", s.Tests, s.Failures, s.Skipped, len(s.Suites))
	}
	a := s.Suites[0]
	if a.Name != "doorman-sim/a" || a.Tests != 2 || a.Failures != 1 || a.Time != 7 || a.Timestamp != "2026-01-02T03:04:05" {
		t.Errorf("suite a: %+v", a)
	}
	f := a.Cases[1]
	if f.Name != "crash" || f.Failure == nil || f.Failure.Message != "1 of 2 checks failed: replays refused" ||
		!strings.Contains(f.Failure.Body, "FAIL replays refused") || !strings.Contains(f.Failure.Body, "/tmp/x/a/crash") ||
		!strings.Contains(f.SystemOut, "=== scenario crash") {
		t.Errorf("failed case: %+v %+v", f, f.Failure)
	}
	if a.Cases[0].Failure != nil || a.Cases[0].Skipped != nil || a.Cases[0].SystemOut != "" {
		t.Errorf("passed case carries more than a pass: %+v", a.Cases[0])
	}
	for _, c := range s.Suites[1].Cases {
		if c.Skipped == nil || !strings.HasPrefix(c.Skipped.Message, string(rep.Matrix[c.Name]["b"])+": ") {
			t.Errorf("case %s of b: %+v, want skipped with its verdict", c.Name, c.Skipped)
		}
	}
}

func TestJSONReport(t *testing.T) {
	rep := fakeReport()
	rep.ExitStatus, rep.Problem = rep.exitStatus(false)
	var b bytes.Buffer
	if err := rep.writeJSON(&b); err != nil {
		t.Fatal(err)
	}
	var got report
	var raw map[string]any
	if err := json.Unmarshal(b.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["schema"] != float64(reportSchema) || got.ExitStatus != exitFail || got.Summary[sim.VerdictFail] != 1 ||
		got.Matrix["happy"]["b"] != sim.VerdictSkipped || got.Matrix["crash"]["a"] != sim.VerdictFail {
		t.Errorf("JSON report: %s", b.String())
	}
	r := got.Results[0]
	if r.DurationS != 5 || len(r.Checks) != 2 || r.Checks[1].Verdict != "unsupported" || r.Checks[1].Reason != "a gap" ||
		len(r.Figures) != 1 || r.Figures[0].Unit != "ms" || !slices.Equal(r.Tags, []string{"quick"}) {
		t.Errorf("first result: %+v", r)
	}
	if got.Results[1].Checks[1].Verdict != "fail" || got.Results[1].Checks[1].AtS != 1 {
		t.Errorf("failed check: %+v", got.Results[1].Checks[1])
	}
}

func TestExitStatus(t *testing.T) {
	res := func(impl string, v sim.Verdict, reason string) resultRecord {
		return resultRecord{Scenario: "s", Impl: impl, Verdict: v, Reason: reason}
	}
	for _, c := range []struct {
		name        string
		results     []resultRecord
		interrupted bool
		want        int
		why         string
	}{
		{"all pass", []resultRecord{res("a", sim.VerdictPass, ""), res("b", sim.VerdictPass, "")}, false, exitPass, ""},
		{"pass and skip", []resultRecord{res("a", sim.VerdictPass, ""), res("a", sim.VerdictSkipped, "no tun"), res("b", sim.VerdictPass, "")}, false, exitPass, ""},
		{"a failure", []resultRecord{res("a", sim.VerdictPass, ""), res("b", sim.VerdictFail, "x")}, false, exitFail, "1 of 2 scenarios failed"},
		{"one implementation ran nothing", []resultRecord{res("a", sim.VerdictPass, ""), res("b", sim.VerdictUnsupported, "x")}, false, exitUsage, "b: nothing ran"},
		{"not installed", []resultRecord{res("a", sim.VerdictPass, ""), res("b", sim.VerdictSkipped, notInstalledPrefix+": y")}, false, exitUsage, notInstalledPrefix + ": b"},
		{"interrupted", []resultRecord{res("a", sim.VerdictFail, "")}, true, exitInterrupted, "interrupted"},
	} {
		rep := &report{Scenarios: []string{"s"}, Impls: []implRecord{{Name: "a"}, {Name: "b"}}, Results: c.results}
		code, why := rep.exitStatus(c.interrupted)
		if code != c.want || !strings.Contains(why, c.why) || (c.why == "" && why != "") {
			t.Errorf("%s: exit %d (%q), want %d (%q)", c.name, code, why, c.want, c.why)
		}
	}
}

// TestWorkflow checks the CI recipe (.github/workflows/sim.yml) without
// GitHub: it parses, runs on a hosted Ubuntu runner, installs what the
// scenarios use, runs only make targets that exist and doorman-sim
// command lines that doorman-sim accepts (tags that select scenarios,
// adapters that load), and keeps the artifacts of failures.
func TestWorkflow(t *testing.T) {
	b, err := os.ReadFile("../../.github/workflows/sim.yml")
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Jobs map[string]struct {
			RunsOn string `yaml:"runs-on"`
			Steps  []struct {
				Name string            `yaml:"name"`
				If   string            `yaml:"if"`
				Uses string            `yaml:"uses"`
				Run  string            `yaml:"run"`
				With map[string]string `yaml:"with"`
			} `yaml:"steps"`
		} `yaml:"jobs"`
	}
	if err := yaml.Unmarshal(b, &wf); err != nil {
		t.Fatalf("sim.yml: %v", err)
	}
	makefile, err := os.ReadFile("../../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if len(wf.Jobs) == 0 {
		t.Fatal("sim.yml has no jobs")
	}
	for name, job := range wf.Jobs {
		if job.RunsOn != "ubuntu-latest" {
			t.Errorf("job %s runs on %q, want ubuntu-latest", name, job.RunsOn)
		}
		var sims int
		var apt, uploadsArtifacts bool
		for _, st := range job.Steps {
			if st.If == "failure()" && strings.HasPrefix(st.Uses, "actions/upload-artifact@") && strings.Contains(st.With["path"], "doorman-sim-artifacts") {
				uploadsArtifacts = true
			}
			for cmd := range strings.SplitSeq(st.Run, "&&") {
				f := strings.Fields(cmd)
				if len(f) > 0 && f[0] == "sudo" {
					f = f[1:]
				}
				switch {
				case len(f) == 0:
				case f[0] == "make":
					for _, target := range f[1:] {
						if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(target) + `:`).Match(makefile) {
							t.Errorf("job %s: make %s: no such target in the Makefile", name, target)
						}
					}
				case f[0] == "apt-get" && slices.Contains(f, "install"):
					apt = slices.Contains(f, "nftables") && slices.Contains(f, "iptables") && slices.Contains(f, "iproute2")
				case f[0] == "./bin/doorman-sim":
					sims++
					checkSimCommand(t, name, f[1:])
				}
			}
		}
		if sims == 0 || !apt || !uploadsArtifacts {
			t.Errorf("job %s: %d doorman-sim runs, installs nftables/iptables/iproute2: %v, uploads artifacts on failure: %v", name, sims, apt, uploadsArtifacts)
		}
	}
}

// checkSimCommand parses a doorman-sim command line of the workflow.
func checkSimCommand(t *testing.T, job string, args []string) {
	var o options
	var errb bytes.Buffer
	fs := newFlags(&o, &errb)
	if err := fs.Parse(args); err != nil {
		t.Errorf("job %s: doorman-sim %q: %v", job, args, err)
		return
	}
	rest := fs.Args()
	if len(rest) == 0 || rest[0] != "run" || o.junit == "" || o.json == "" || o.bin != "bin" {
		t.Errorf("job %s: doorman-sim %q: want run with --bin bin (the Makefile's BIN), --junit and --json", job, args)
	}
	scens, err := selectScenarios(rest[1:], o.tags, sim.FloodOptions{})
	if err != nil || len(scens) == 0 {
		t.Errorf("job %s: doorman-sim %q selects no scenario (%v)", job, args, err)
	}
	for i := range o.impls {
		o.impls[i] = filepath.Join("../..", o.impls[i])
	}
	if _, err := loadImpls(o.impls); err != nil {
		t.Errorf("job %s: %v", job, err)
	}
}

// TestREADMEDocumentsCI checks that README.md's "doorman-sim in CI"
// section gives the container flags and names every field of the JSON
// report.
func TestREADMEDocumentsCI(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "## doorman-sim in CI")
	if !ok {
		t.Fatal(`README.md has no "## doorman-sim in CI" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	for _, want := range []string{"--cap-add NET_ADMIN", "--cap-add NET_RAW", "--privileged", "--device /dev/net/tun",
		".github/workflows/sim.yml", "--tag quick", "--junit", "--impl", "uname -r"} {
		if !strings.Contains(section, want) {
			t.Errorf("the CI section does not mention %s", want)
		}
	}
	for _, typ := range []any{report{}, implRecord{}, resultRecord{}, checkRecord{}, figureRecord{}} {
		rt := reflect.TypeOf(typ)
		for i := range rt.NumField() {
			name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
			if name != "" && name != "-" && !strings.Contains(section, "`"+name+"`") {
				t.Errorf("the CI section does not document JSON field %s (%s)", name, rt.Name())
			}
		}
	}
}

// TestIntegrationNotInstalled: an implementation whose programs are
// missing is reported as not installed and is no pass. It creates no
// namespace.
func TestIntegrationNotInstalled(t *testing.T) {
	if _, err := exec.LookPath("doormand-0.81"); err == nil {
		t.Skip("doormand-0.81 is installed here")
	}
	dir := t.TempDir()
	js := filepath.Join(dir, "r.json")
	code, out, _ := runCLI(t, "run", "happy", "--impl", "../../conformance/adapters/doorman-0.81.toml", "--bin", dir, "--json", js)
	if code != exitUsage || !strings.Contains(out, "implementation not installed") {
		t.Fatalf("exit %d, output:\n%s", code, out)
	}
	rep := readJSON(t, js)
	if len(rep.Results) != 1 || rep.Results[0].Verdict != sim.VerdictSkipped || rep.Impls[0].Installed ||
		!strings.HasPrefix(rep.Results[0].Reason, notInstalledPrefix) {
		t.Errorf("JSON: %+v %+v", rep.Impls, rep.Results)
	}
}

// TestIntegrationBrokenDaemon plays crash against a deliberately broken
// daemon (testdata/mutant-replay.toml: a replay store that admits every
// digest) and against doormand-nftables.toml, as a matrix: doorman-sim
// must exit 1, and its JUnit and JSON must say which failed. About 10 s.
func TestIntegrationBrokenDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces and nftables")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("needs nft")
	}
	bin := doormandtest.Binaries(t)
	tools := t.TempDir()
	build := exec.Command("go", "build", "-o", tools, "github.com/doorman-project/doorman/conformance/testdata/mutants/mutantd")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build mutantd: %v\n%s", err, out)
	}
	t.Setenv("PATH", tools+string(os.PathListSeparator)+os.Getenv("PATH"))
	dir := t.TempDir()
	js, ju, art := filepath.Join(dir, "r.json"), filepath.Join(dir, "r.xml"), filepath.Join(dir, "artifacts")
	code, out, errOut := runCLI(t, "run", "crash", "--impl", "testdata/mutant-replay.toml",
		"--impl", "../../conformance/adapters/doormand-nftables.toml", "--bin", bin, "--junit", ju, "--json", js, "--artifacts", art)
	if code != exitFail {
		t.Fatalf("exit %d, want 1; stderr %s; output:\n%s", code, errOut, out)
	}
	s := readJUnit(t, ju)
	if s.Tests != 2 || s.Failures != 1 || len(s.Suites) != 2 || s.Suites[0].Failures != 1 || s.Suites[1].Failures != 0 {
		t.Errorf("JUnit: %d tests, %d failures, suites %+v", s.Tests, s.Failures, s.Suites)
	}
	rep := readJSON(t, js)
	if rep.Matrix["crash"]["mutant-replay"] != sim.VerdictFail || rep.Matrix["crash"]["doormand-nftables"] != sim.VerdictPass {
		t.Errorf("matrix %v", rep.Matrix)
	}
	if !regexp.MustCompile(`(?m)^crash +FAIL [0-9.]+s.* +PASS [0-9.]+s`).MatchString(out) {
		t.Errorf("no matrix row for crash in the output:\n%s", out)
	}
	for _, f := range []string{"doormand.cf", "guests", "daemon-1.log", "events.jsonl", "server-eth0.pcap"} {
		if _, err := os.Stat(filepath.Join(art, "mutant-replay", "crash", f)); err != nil {
			t.Errorf("artifact of the failed scenario: %v", err)
		}
	}
}

func readJSON(t *testing.T, path string) report {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rep
}

func readJUnit(t *testing.T, path string) junitSuites {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s junitSuites
	if err := xml.Unmarshal(b, &s); err != nil {
		t.Fatalf("%s is not JUnit XML: %v", path, err)
	}
	return s
}
