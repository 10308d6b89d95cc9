//go:build linux

package conformance

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

func readSpec(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile("../spec/doorman.md")
	if err != nil {
		t.Fatalf("spec: %v", err)
	}
	return string(b)
}

// specIDs finds every requirement ID the spec defines the simplest way: a
// bold ID that opens a line (a paragraph's first) or follows "(".
func specIDs(spec string) []string {
	re := regexp.MustCompile(`(?m)(?:^|\()\*\*((?:CLASSIC|MODERN)-\d+\.\d+(?:/\d+)?)\*\*`)
	var ids []string
	seen := map[string]bool{}
	for _, m := range re.FindAllStringSubmatch(spec, -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			ids = append(ids, m[1])
		}
	}
	return ids
}

// TestCoverageAccountsForEverySpecID is the check the issue asked for:
// every ID of the spec appears in the coverage report with its cases or a
// reason. It fails when the spec gains an ID the suite neither checks nor
// explains, or when the parser loses one.
func TestCoverageAccountsForEverySpecID(t *testing.T) {
	spec := readSpec(t)
	ids := specIDs(spec)
	if len(ids) < 70 {
		t.Fatalf("found only %d IDs in the spec", len(ids))
	}
	entries := map[string]CoverageEntry{}
	for _, e := range Coverage(spec) {
		if _, dup := entries[e.ID]; dup {
			t.Errorf("%s reported twice", e.ID)
		}
		entries[e.ID] = e
	}
	for _, id := range ids {
		e, ok := entries[id]
		switch {
		case !ok:
			t.Errorf("%s is in the spec but not in the coverage report", id)
		case e.Status == StatusUnknown:
			t.Errorf("%s: no case checks it and no reason says why not", id)
		case e.Status == StatusParts && len(e.Parts) == 0:
			t.Errorf("%s: reported through parts it does not have", id)
		}
	}
	if len(entries) != len(ids) {
		t.Errorf("the report has %d requirements, the spec %d", len(entries), len(ids))
	}
	if err := CheckCoverage(spec); err != nil {
		t.Error(err)
	}
}

// TestCoverageIssueIDs: the requirements the first parser dropped (their
// MUST was not in the first sentence, or their clause held '.', ';' or
// ')') are each reported as MUST.
func TestCoverageIssueIDs(t *testing.T) {
	got := map[string]Requirement{}
	for _, r := range ParseRequirements(readSpec(t)) {
		got[r.ID] = r
	}
	for _, id := range []string{"CLASSIC-2.1", "CLASSIC-2.1/2", "CLASSIC-2.3", "CLASSIC-2.6", "CLASSIC-2.7",
		"CLASSIC-3.2", "CLASSIC-4.8", "CLASSIC-5.4/1", "CLASSIC-5.5/2", "CLASSIC-6.6/2", "CLASSIC-7.2",
		"CLASSIC-8.1", "CLASSIC-8.4", "CLASSIC-9.2", "CLASSIC-9.4/2", "CLASSIC-4.4", "CLASSIC-4.5/2"} {
		r, ok := got[id]
		if !ok {
			t.Errorf("%s not parsed", id)
			continue
		}
		if l := r.Level(); !strings.HasPrefix(l, "MUST") {
			t.Errorf("%s parsed with level %q from %q", id, l, r.Text)
		}
	}
}

func TestParseRequirements(t *testing.T) {
	spec := "# 1. Conventions\n\nIDs look like **CLASSIC-2.1**; that is a reference.\n\n" +
		"## 4. Section\n\n" +
		"**CLASSIC-4.6** A doorman MUST compare in constant time.\n\n" +
		"**CLASSIC-2.1** Intro with 0.81 and CLASSIC-2.4. Its payload MUST be\nfour fields:\n\n    port SP group\n\n" +
		"A knocker MUST emit this (**CLASSIC-2.1/1**); a doorman MUST reject junk (e.g. a byte after\n" +
		"CLASSIC-2.4) (**CLASSIC-2.1/2**), checked at once (**CLASSIC-2.1/3**). It SHOULD log.\n\n" +
		"**CLASSIC-3.3** A knocker MUST NOT use time (**CLASSIC-3.3/2**; 0.81 did).\n\n" +
		"Later text MUST drop them (**MODERN-12.1**).\n"
	got := map[string]Requirement{}
	var order []string
	for _, r := range ParseRequirements(spec) {
		got[r.ID] = r
		order = append(order, r.ID)
	}
	want := []string{"CLASSIC-4.6", "CLASSIC-2.1", "CLASSIC-2.1/1", "CLASSIC-2.1/2", "CLASSIC-2.1/3", "CLASSIC-3.3", "CLASSIC-3.3/2", "MODERN-12.1"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Fatalf("IDs %v, want %v", order, want)
	}
	checks := []struct{ id, text, level string }{
		{"CLASSIC-4.6", "A doorman MUST compare in constant time.", "MUST"},
		{"CLASSIC-2.1", "Intro with 0.81 and CLASSIC-2.4. Its payload MUST be four fields: port SP group It SHOULD log.", "MUST"},
		{"CLASSIC-2.1/1", "A knocker MUST emit this", "MUST"},
		{"CLASSIC-2.1/2", "a doorman MUST reject junk (e.g. a byte after CLASSIC-2.4)", "MUST"},
		{"CLASSIC-2.1/3", "checked at once", "MUST"}, // continues the clause before
		{"CLASSIC-3.3/2", "A knocker MUST NOT use time; 0.81 did).", "MUST NOT"},
		{"MODERN-12.1", "Later text MUST drop them", "MUST"},
	}
	for _, c := range checks {
		r := got[c.id]
		if r.Text != c.text || r.Level() != c.level {
			t.Errorf("%s: text %q level %q, want %q %q", c.id, r.Text, r.Level(), c.text, c.level)
		}
	}
	if p := got["CLASSIC-2.1"].Parts; strings.Join(p, " ") != "CLASSIC-2.1/1 CLASSIC-2.1/2 CLASSIC-2.1/3" {
		t.Errorf("parts of CLASSIC-2.1: %v", p)
	}
	if got["CLASSIC-3.3"].Level() != "" || got["CLASSIC-4.6"].Section != "4" {
		t.Errorf("3.3: %+v, 4.6: %+v", got["CLASSIC-3.3"], got["CLASSIC-4.6"])
	}
}

// TestCoverageCatchesNewID: a requirement added to the spec without a
// case or a reason makes the check fail, wherever its keyword is.
func TestCoverageCatchesNewID(t *testing.T) {
	spec := readSpec(t)
	for _, add := range []string{
		"\n\n**CLASSIC-4.99** A doorman MUST do something new.\n",
		"\n\n**CLASSIC-4.98** First a sentence (see 0.81). Then it MUST do x; y (z) (**CLASSIC-4.98/2**).\n",
		"\n\n**CLASSIC-4.97** Text without a keyword.\n",
	} {
		err := CheckCoverage(spec + add)
		id := regexp.MustCompile(`CLASSIC-4\.9\d(/\d)?`).FindString(add)
		if err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("adding %q: CheckCoverage = %v, want an error naming %s", add, err, id)
		}
	}
}

// TestCoverageModern: every modern requirement has cases or a reason, and
// a new modern ID without either, or without a keyword, is reported.
func TestCoverageModern(t *testing.T) {
	spec := readSpec(t)
	for _, e := range Coverage(spec) {
		if strings.HasPrefix(e.ID, "MODERN-") && e.Status == StatusUnknown {
			t.Errorf("%s: no case and no reason", e.ID)
		}
	}
	for _, add := range []string{
		"\n\n**MODERN-12.99** A doorman MUST do something new.\n",
		"\n\n**MODERN-12.98** A definition without a keyword.\n",
	} {
		err := CheckCoverage(spec + add)
		id := regexp.MustCompile(`MODERN-12\.9\d`).FindString(add)
		if err == nil || !strings.Contains(err.Error(), id) {
			t.Errorf("adding %q: CheckCoverage = %v, want an error naming %s", add, err, id)
		}
	}
}

func TestWriteCoverage(t *testing.T) {
	spec := readSpec(t)
	var b bytes.Buffer
	if err := WriteCoverage(&b, spec); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, id := range specIDs(spec) {
		if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(id) + ` `).MatchString(out) {
			t.Errorf("%s missing from the report", id)
		}
	}
	for _, want := range []string{"Not black-box testable (", "covered by: 5.4/full-store-refuses",
		"CLASSIC-4.6", "constant time", "requirement IDs in the spec"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	// 4.4 is covered for every address kind, not only the wrong port.
	for _, e := range Coverage(spec) {
		if e.ID == "CLASSIC-4.4" && !strings.Contains(strings.Join(e.Cases, " "), "4.4/not-own-address") {
			t.Errorf("CLASSIC-4.4 covered by %v only", e.Cases)
		}
	}
}

func FuzzParseRequirements(f *testing.F) {
	f.Add("**CLASSIC-2.1** A MUST b (**CLASSIC-2.1/1**); c MUST NOT d (**CLASSIC-2.1/2**).")
	f.Add("**CLASSIC-4.6**")
	f.Add("x (**MODERN-12.1**)")
	f.Add("# h\n\n(**CLASSIC-1.1**; x) y. Z (**CLASSIC-1.1/2**)")
	f.Fuzz(func(t *testing.T, s string) {
		seen := map[string]bool{}
		for _, r := range ParseRequirements(s) {
			if !strings.Contains(s, r.ID) {
				t.Fatalf("ID %q not in input", r.ID)
			}
			if seen[r.ID] {
				t.Fatalf("ID %q twice", r.ID)
			}
			seen[r.ID] = true
		}
	})
}
