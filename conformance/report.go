//go:build linux

package conformance

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Section returns the spec section of a case ID ("4.3/ip-options" -> "4").
func Section(id string) string {
	s, _, _ := strings.Cut(id, "/")
	major, _, _ := strings.Cut(s, ".")
	return major
}

var sectionTitles = map[string]string{
	"1": "1. Conventions", "2": "2. The classic knock packet", "3": "3. The HMAC and the tag",
	"4": "4. Receiving and verifying a knock", "5": "5. Replay protection", "6": "6. Doors",
	"7": "7. The firewall-script interface", "8": "8. doormand.cf", "9": "9. The guest list",
	"10": "10. .knockcf", "11": "11. The knocker", "12": "12. The modern protocol",
}

// Summary counts the verdicts of a run.
type Summary struct {
	Total, Pass, Fail, Skipped, Unsupported, Error int
}

// Summarize counts results by verdict.
func Summarize(results []Result) Summary {
	s := Summary{Total: len(results)}
	for _, r := range results {
		switch r.Verdict {
		case Pass:
			s.Pass++
		case Fail:
			s.Fail++
		case Skipped:
			s.Skipped++
		case Unsupported:
			s.Unsupported++
		case Error:
			s.Error++
		}
	}
	return s
}

// Problem says why a run is not a success, or returns "" if it is one: at
// least one case ran and passed, none failed and no setup failed. A run
// in which nothing was tested (no case selected, every case skipped or
// unsupported) is not a success: a broken adapter must not pass CI.
func (s Summary) Problem() string {
	switch {
	case s.Fail > 0 && s.Error > 0:
		return fmt.Sprintf("%d of %d cases failed and %d could not be set up", s.Fail, s.Total, s.Error)
	case s.Fail > 0:
		return fmt.Sprintf("%d of %d cases failed", s.Fail, s.Total)
	case s.Error > 0:
		return fmt.Sprintf("%d of %d cases could not be set up (verdict error)", s.Error, s.Total)
	case s.Total == 0:
		return "no case was selected (check --run and the adapters' kinds)"
	case s.Pass == 0:
		return fmt.Sprintf("no case was run: all %d were skipped or unsupported", s.Total)
	}
	return ""
}

// WriteTable writes results as a terminal table grouped by spec section.
func WriteTable(w io.Writer, results []Result) {
	groups := map[string][]Result{}
	var keys []string
	for _, r := range results {
		s := Section(r.ID)
		if _, ok := groups[s]; !ok {
			keys = append(keys, s)
		}
		groups[s] = append(groups[s], r)
	}
	sort.SliceStable(keys, func(i, j int) bool { return atoiSafe(keys[i]) < atoiSafe(keys[j]) })
	for _, k := range keys {
		title := sectionTitles[k]
		if title == "" {
			title = "Section " + k
		}
		fmt.Fprintf(w, "\n%s\n", title)
		for _, r := range groups[k] {
			fmt.Fprintf(w, "  %-11s %-36s %-14s %-8s %6s  %s\n", strings.ToUpper(string(r.Verdict)), r.ID, r.Req, r.Level,
				r.Duration.Round(100*time.Millisecond).String(), r.Impl)
			if r.Detail != "" && r.Verdict != Pass {
				fmt.Fprintf(w, "              %s\n", indent(r.Detail))
			}
		}
	}
	s := Summarize(results)
	fmt.Fprintf(w, "\n%d cases: %d pass, %d fail, %d skipped, %d unsupported, %d error\n", s.Total,
		s.Pass, s.Fail, s.Skipped, s.Unsupported, s.Error)
	if p := s.Problem(); p != "" {
		fmt.Fprintf(w, "NOT A PASS: %s\n", p)
	}
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n              ") }

func atoiSafe(s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			return 1 << 30
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// WriteJSON writes results as a JSON array.
func WriteJSON(w io.Writer, results []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if results == nil {
		results = []Result{}
	}
	return enc.Encode(results)
}

type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     float64     `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      float64       `xml:"time,attr"`
	Failure   *junitMessage `xml:"failure,omitempty"`
	Error     *junitMessage `xml:"error,omitempty"`
	Skipped   *junitMessage `xml:"skipped,omitempty"`
}

type junitMessage struct {
	Message string `xml:"message,attr"`
	Body    string `xml:",chardata"`
}

// WriteJUnit writes results as JUnit XML, one test suite per implementation.
func WriteJUnit(w io.Writer, results []Result) error {
	byImpl := map[string]*junitSuite{}
	var order []string
	for _, r := range results {
		s := byImpl[r.Impl]
		if s == nil {
			s = &junitSuite{Name: "doorman-conformance/" + r.Impl}
			byImpl[r.Impl] = s
			order = append(order, r.Impl)
		}
		c := junitCase{Name: r.ID + " (" + r.Req + " " + r.Level + ")", Classname: "section" + Section(r.ID), Time: r.Duration.Seconds()}
		switch r.Verdict {
		case Fail:
			c.Failure = &junitMessage{Message: firstLine(r.Detail), Body: r.Detail}
			s.Failures++
		case Error:
			c.Error = &junitMessage{Message: "setup error: " + firstLine(r.Detail), Body: r.Detail}
			s.Errors++
		case Skipped, Unsupported:
			c.Skipped = &junitMessage{Message: string(r.Verdict) + ": " + r.Detail}
			s.Skipped++
		}
		s.Tests++
		s.Time += c.Time
		s.Cases = append(s.Cases, c)
	}
	var out junitSuites
	for _, k := range order {
		out.Suites = append(out.Suites, *byImpl[k])
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

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}
