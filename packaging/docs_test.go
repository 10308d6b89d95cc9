package packaging

import (
	"regexp"
	"strings"
	"testing"
)

// terms returns the bold words of a markdown manual's definition terms:
// the lines that start with a bold word, such as "**fail-limit** *n*,
// **fail-delay** *seconds*".
func terms(page string) map[string]bool {
	bold := regexp.MustCompile(`\*\*([^*]+)\*\*`)
	m := map[string]bool{}
	for _, l := range strings.Split(page, "\n") {
		if !strings.HasPrefix(l, "**") {
			continue
		}
		for _, b := range bold.FindAllStringSubmatch(l, -1) {
			m[b[1]] = true
		}
	}
	return m
}

// TestManualsNameEveryKeyword keeps the manual pages in step with the
// parsers: doormand.cf(5) documents every keyword of daemon/config's table,
// and doorman-knock(1) every record of .knockcf that the example shows
// (TestKnockcfExample parses them all).
func TestManualsNameEveryKeyword(t *testing.T) {
	documented := terms(readFile(t, "../docs/doormand.cf.5.md"))
	for _, kw := range daemonKeywords(t) {
		if !documented[kw] {
			t.Errorf("docs/doormand.cf.5.md has no entry **%s** for keyword %q", kw, kw)
		}
	}
	documented = terms(readFile(t, "../docs/doorman-knock.1.md"))
	var records int
	for _, l := range strings.Split(readFile(t, "examples/knockcf"), "\n") {
		m := setting.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		records++
		if kw := m[1]; !documented[kw] {
			t.Errorf("docs/doorman-knock.1.md has no entry **%s** for the .knockcf record %q", kw, kw)
		}
	}
	if records < 7 {
		t.Errorf("examples/knockcf shows %d records; want every one (group secret port run server private-key source)", records)
	}
}
