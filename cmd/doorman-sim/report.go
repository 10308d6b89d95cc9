//go:build linux

package main

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/doorman-project/doorman/sim"
)

// reportSchema is the version of the JSON report's layout (README.md,
// "doorman-sim in CI"); it changes when a field changes meaning or goes.
const reportSchema = 1

// report is one doorman-sim run: what was selected, what each
// implementation did with each scenario. It is written as JSON as is.
type report struct {
	Schema    int           `json:"schema"`
	Version   string        `json:"version"`
	Started   time.Time     `json:"started"`
	Duration  time.Duration `json:"-"`
	DurationS float64       `json:"duration_s"`
	// Impls are the implementations in the order given.
	Impls []implRecord `json:"implementations"`
	// Scenarios are the selected scenarios' names, in the order played.
	Scenarios []string       `json:"scenarios"`
	Results   []resultRecord `json:"results"`
	// Matrix maps scenario, then implementation, to the verdict.
	Matrix     map[string]map[string]sim.Verdict `json:"matrix"`
	Summary    map[sim.Verdict]int               `json:"summary"`
	ExitStatus int                               `json:"exit_status"`
	// Problem says why the run is not a pass; empty for a pass.
	Problem string `json:"problem,omitempty"`
}

// implRecord is one implementation under test.
type implRecord struct {
	Name string `json:"name"`
	// Source is the adapter file, or the doormand binary played directly.
	Source         string `json:"source"`
	Description    string `json:"description,omitempty"`
	DoormandEvents bool   `json:"doormand_events"`
	// Installed is false when every scenario was skipped because a
	// program the adapter requires is missing.
	Installed bool `json:"installed"`
}

// resultRecord is one scenario played against one implementation.
type resultRecord struct {
	Scenario  string         `json:"scenario"`
	Impl      string         `json:"implementation"`
	Tags      []string       `json:"tags"`
	Verdict   sim.Verdict    `json:"verdict"`
	Reason    string         `json:"reason,omitempty"`
	Started   time.Time      `json:"started"`
	DurationS float64        `json:"duration_s"`
	Checks    []checkRecord  `json:"checks"`
	Figures   []figureRecord `json:"figures"`
	Artifacts string         `json:"artifacts,omitempty"`

	transcript string
}

// checkRecord is one check of a scenario.
type checkRecord struct {
	Text string `json:"text"`
	// Verdict is "pass", "fail" or "unsupported".
	Verdict string  `json:"verdict"`
	Reason  string  `json:"reason,omitempty"`
	AtS     float64 `json:"at_s"`
}

// figureRecord is one measurement of a scenario.
type figureRecord struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// add records what playing s found.
func (rep *report) add(s sim.Scenario, res sim.Result) {
	rec := resultRecord{Scenario: res.Scenario, Impl: res.Impl, Tags: s.Tags, Verdict: res.Verdict, Reason: res.Reason,
		Started: res.Start, DurationS: res.Duration.Seconds(), Artifacts: res.Dir, transcript: res.Transcript,
		Checks: []checkRecord{}, Figures: []figureRecord{}}
	if rec.Tags == nil {
		rec.Tags = []string{}
	}
	for _, c := range res.Checks {
		v := "pass"
		switch {
		case c.Unsupported != "":
			v = "unsupported"
		case !c.OK:
			v = "fail"
		}
		rec.Checks = append(rec.Checks, checkRecord{Text: c.Text, Verdict: v, Reason: c.Unsupported, AtS: c.At.Seconds()})
	}
	for _, f := range res.Figures {
		rec.Figures = append(rec.Figures, figureRecord{Name: f.Name, Value: f.Value, Unit: f.Unit})
	}
	rep.Results = append(rep.Results, rec)
}

// notInstalledPrefix starts the reason of a scenario skipped because the
// implementation is not installed (sim.Play).
const notInstalledPrefix = "implementation not installed"

// notInstalled reports whether every scenario of impl was skipped as not
// installed (and at least one was).
func (rep *report) notInstalled(impl string) bool {
	n := 0
	for _, r := range rep.Results {
		if r.Impl != impl {
			continue
		}
		if r.Verdict != sim.VerdictSkipped || !strings.HasPrefix(r.Reason, notInstalledPrefix) {
			return false
		}
		n++
	}
	return n > 0
}

// exitStatus fills in the matrix and the summary and returns the exit
// status with the reason the run is not a pass ("" for a pass).
func (rep *report) exitStatus(interrupted bool) (int, string) {
	rep.DurationS = rep.Duration.Seconds()
	rep.Schema = reportSchema
	rep.Matrix = map[string]map[string]sim.Verdict{}
	rep.Summary = map[sim.Verdict]int{sim.VerdictPass: 0, sim.VerdictFail: 0, sim.VerdictSkipped: 0, sim.VerdictUnsupported: 0}
	passed := map[string]int{}
	for _, r := range rep.Results {
		if rep.Matrix[r.Scenario] == nil {
			rep.Matrix[r.Scenario] = map[string]sim.Verdict{}
		}
		rep.Matrix[r.Scenario][r.Impl] = r.Verdict
		rep.Summary[r.Verdict]++
		if r.Verdict == sim.VerdictPass {
			passed[r.Impl]++
		}
	}
	switch {
	case interrupted:
		return exitInterrupted, "interrupted; the networks were torn down"
	case rep.Summary[sim.VerdictFail] > 0:
		return exitFail, fmt.Sprintf("%d of %d scenarios failed", rep.Summary[sim.VerdictFail], len(rep.Results))
	case len(rep.Scenarios) == 0:
		return exitUsage, "nothing ran: no scenario selected (see doorman-sim list)"
	}
	var why []string
	for _, im := range rep.Impls {
		switch {
		case rep.notInstalled(im.Name):
			why = append(why, fmt.Sprintf("%s: %s", notInstalledPrefix, im.Name))
		case passed[im.Name] == 0:
			why = append(why, fmt.Sprintf("%s: nothing ran (every scenario skipped or unsupported)", im.Name))
		}
	}
	if len(why) > 0 {
		return exitUsage, strings.Join(why, "; ")
	}
	return exitPass, ""
}

// writeTable prints the scenarios × implementations matrix, then why each
// scenario that did not pass did not.
func (rep *report) writeTable(w io.Writer) {
	byCell := map[[2]string]resultRecord{}
	for _, r := range rep.Results {
		byCell[[2]string{r.Scenario, r.Impl}] = r
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "SCENARIO")
	for _, im := range rep.Impls {
		fmt.Fprintf(tw, "\t%s", im.Name)
	}
	fmt.Fprintln(tw)
	for _, s := range rep.Scenarios {
		fmt.Fprint(tw, s)
		for _, im := range rep.Impls {
			r, ok := byCell[[2]string{s, im.Name}]
			switch {
			case !ok:
				fmt.Fprint(tw, "\t-")
			case r.Verdict == sim.VerdictPass || r.Verdict == sim.VerdictFail:
				fmt.Fprintf(tw, "\t%s %.1fs%s", strings.ToUpper(string(r.Verdict)), r.DurationS, unsupportedChecks(r))
			default:
				fmt.Fprintf(tw, "\t%s", strings.ToUpper(string(r.Verdict)))
			}
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
	for _, r := range rep.Results {
		if r.Verdict != sim.VerdictPass {
			reason, _, _ := strings.Cut(r.Reason, "\n")
			fmt.Fprintf(w, "  %s [%s] %s: %s\n", r.Scenario, r.Impl, r.Verdict, reason)
		}
	}
	s := rep.Summary
	fmt.Fprintf(w, "%d results: %d pass, %d fail, %d skipped, %d unsupported (%.1fs)\n", len(rep.Results),
		s[sim.VerdictPass], s[sim.VerdictFail], s[sim.VerdictSkipped], s[sim.VerdictUnsupported], rep.DurationS)
}

func unsupportedChecks(r resultRecord) string {
	n := 0
	for _, c := range r.Checks {
		if c.Verdict == "unsupported" {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(" (%d unsupp.)", n)
}

// writeJSON writes the report as indented JSON.
func (rep *report) writeJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rep)
}

// JUnit XML as CI servers read it (the Jenkins/Ant schema): a suite per
// implementation, a test case per scenario.
type (
	junitSuites struct {
		XMLName  xml.Name     `xml:"testsuites"`
		Name     string       `xml:"name,attr"`
		Tests    int          `xml:"tests,attr"`
		Failures int          `xml:"failures,attr"`
		Skipped  int          `xml:"skipped,attr"`
		Time     float64      `xml:"time,attr"`
		Suites   []junitSuite `xml:"testsuite"`
	}
	junitSuite struct {
		Name      string      `xml:"name,attr"`
		Tests     int         `xml:"tests,attr"`
		Failures  int         `xml:"failures,attr"`
		Errors    int         `xml:"errors,attr"`
		Skipped   int         `xml:"skipped,attr"`
		Time      float64     `xml:"time,attr"`
		Timestamp string      `xml:"timestamp,attr,omitempty"`
		Cases     []junitCase `xml:"testcase"`
	}
	junitCase struct {
		Name      string        `xml:"name,attr"`
		Classname string        `xml:"classname,attr"`
		Time      float64       `xml:"time,attr"`
		Failure   *junitMessage `xml:"failure,omitempty"`
		Skipped   *junitMessage `xml:"skipped,omitempty"`
		SystemOut string        `xml:"system-out,omitempty"`
	}
	junitMessage struct {
		Message string `xml:"message,attr"`
		Body    string `xml:",chardata"`
	}
)

// writeJUnit writes the report as JUnit XML. A failed scenario carries
// its failed checks and, as system-out, its transcript.
func (rep *report) writeJUnit(w io.Writer) error {
	out := junitSuites{Name: "doorman-sim", Time: rep.DurationS}
	for _, im := range rep.Impls {
		s := junitSuite{Name: "doorman-sim/" + im.Name}
		for _, r := range rep.Results {
			if r.Impl != im.Name {
				continue
			}
			if s.Timestamp == "" {
				s.Timestamp = r.Started.UTC().Format("2006-01-02T15:04:05")
			}
			c := junitCase{Name: r.Scenario, Classname: "doorman-sim." + im.Name, Time: r.DurationS}
			switch r.Verdict {
			case sim.VerdictFail:
				var failed []string
				for _, ch := range r.Checks {
					if ch.Verdict == "fail" {
						failed = append(failed, fmt.Sprintf("[+%.3fs] FAIL %s", ch.AtS, ch.Text))
					}
				}
				c.Failure = &junitMessage{Message: r.Reason, Body: strings.Join(failed, "\n")}
				if r.Artifacts != "" {
					c.Failure.Body += "\nartifacts: " + r.Artifacts
				}
				c.SystemOut = r.transcript
				s.Failures++
			case sim.VerdictSkipped, sim.VerdictUnsupported:
				c.Skipped = &junitMessage{Message: string(r.Verdict) + ": " + r.Reason}
				s.Skipped++
			}
			s.Tests++
			s.Time += c.Time
			s.Cases = append(s.Cases, c)
		}
		out.Tests += s.Tests
		out.Failures += s.Failures
		out.Skipped += s.Skipped
		out.Suites = append(out.Suites, s)
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
