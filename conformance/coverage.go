//go:build linux

package conformance

import (
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Requirement is one identified requirement parsed from spec/doorman.md.
type Requirement struct {
	ID       string // CLASSIC-4.3 or CLASSIC-2.1/2
	Sentence string // the sentence that carries it
	Levels   []string
}

var (
	reqIDRE   = regexp.MustCompile(`\*\*((?:CLASSIC|MODERN)-\d+\.\d+(?:/\d+)?)\*\*`)
	keywordRE = regexp.MustCompile(`\b(MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\b`)
)

// ParseRequirements extracts every bold requirement ID of the spec with the
// sentence it belongs to. A leading ID (start of a paragraph) takes the
// paragraph's first sentence; a trailing "(**ID/n**)" takes the sentence it
// closes.
func ParseRequirements(spec string) []Requirement {
	var out []Requirement
	for _, para := range strings.Split(spec, "\n\n") {
		p := strings.Join(strings.Fields(para), " ")
		locs := reqIDRE.FindAllStringSubmatchIndex(p, -1)
		for _, l := range locs {
			id := p[l[2]:l[3]]
			var sent string
			if l[0] == 0 {
				rest := p[l[1]:]
				sent = strings.TrimSpace(firstSentence(rest))
				if len(locs) > 1 {
					// The paragraph numbers its parts; the leading ID covers it all.
					sent = strings.TrimSpace(truncate(rest, 240))
				}
			} else {
				start := strings.LastIndexAny(p[:l[0]], ".;)") + 1
				if s2 := strings.LastIndex(p[:l[0]], "**"); s2 > start {
					start = s2 + 2
				}
				sent = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(p[start:l[0]]), "("))
			}
			sent = reqIDRE.ReplaceAllString(sent, "$1")
			var levels []string
			for _, m := range keywordRE.FindAllString(sent, -1) {
				levels = appendUnique(levels, m)
			}
			out = append(out, Requirement{ID: id, Sentence: sent, Levels: levels})
		}
	}
	return out
}

func appendUnique(xs []string, x string) []string {
	for _, y := range xs {
		if y == x {
			return xs
		}
	}
	return append(xs, x)
}

func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// notTestable lists requirements the suite cannot judge from packets and
// port reachability, with the reason.
var notTestable = map[string]string{
	"CLASSIC-2.6":   "first-byte dispatch is internal; its observable part (0xD2 and non-digit payloads refused) is in 2.1/reject-vectors",
	"CLASSIC-3.2":   "canonical re-encoding is internal; its observable part is the lenient vectors",
	"CLASSIC-3.3/2": "how a tag is drawn cannot be seen; 3.3/client-tag-freshness catches repeats only",
	"CLASSIC-4.5/1": "log content is not a wire behaviour",
	"CLASSIC-4.5/2": "log content is not a wire behaviour",
	"CLASSIC-4.5/3": "log rate and counters are internal",
	"CLASSIC-4.6":   "constant-time comparison cannot be observed through the network at this resolution",
	"CLASSIC-4.7":   "log content is not a wire behaviour",
	"CLASSIC-5.2":   "replay identity is shown by 2.5/case-variant-replay; the 16-byte form is internal",
	"CLASSIC-5.3":   "log content is not a wire behaviour",
	"CLASSIC-5.4/1": "needs a replay store capacity in the generic model (not yet)",
	"CLASSIC-5.4/2": "warnings are logs",
	"CLASSIC-5.6":   "needs a 0.81 archive fixture; import is an offline command",
	"CLASSIC-6.2/2": "kernel enforcement vs. fast narrowing is indistinguishable black-box; 6.2/single-connection tests the effect",
	"CLASSIC-6.4":   "the order of rule changes is internal; a cut connection would show in 6.6 and 6.2",
	"CLASSIC-6.5":   "a SYN that never completes a handshake needs a raw TCP client (not yet)",
	"CLASSIC-6.6/2": "the poll interval is covered only loosely by 6.6/close-after-connection-ends",
	"CLASSIC-6.10":  "needs a firewall that refuses rules on demand",
	"CLASSIC-7.1":   "script invocation is visible only to the scripts (a recording script adapter could test it)",
	"CLASSIC-7.2":   "script output handling needs scripts that fail on demand",
	"CLASSIC-7.3":   "the journal is internal; its effect is 6.9 with the script adapter",
	"CLASSIC-8.1":   "configuration syntax is not a wire behaviour (daemon unit tests)",
	"CLASSIC-8.2":   "configuration warnings are logs",
	"CLASSIC-8.3":   "configuration errors are messages",
	"CLASSIC-8.4":   "configuration keywords (the adapters use the 0.81 keywords, which is a weak check)",
	"CLASSIC-8.5":   "the doormand-script adapter exercises it",
	"CLASSIC-8.6":   "file ownership checks are local, not wire behaviour",
	"CLASSIC-9.1":   "guest list syntax is local (the adapters render the 0.81 format)",
	"CLASSIC-9.2":   "guest list syntax is local",
	"CLASSIC-9.3":   "guest list syntax is local",
	"CLASSIC-9.4":   "guest list errors are messages",
	"CLASSIC-9.5":   "file ownership checks are local",
	"CLASSIC-10.1":  "client configuration syntax is local",
	"CLASSIC-10.2":  "client configuration errors are messages",
	"CLASSIC-10.3":  "file permission checks are local",
	"CLASSIC-11.3":  "command-line syntax is what the adapter renders",
	"CLASSIC-11.4":  "terminal echo needs a pty",
	"CLASSIC-4.2/2": "with the admin rulesets used here the knock port is dropped anyway; needs an accept-policy scenario",
	"CLASSIC-2.3":   "payload lengths are covered by the reject vectors (empty, too long)",
	"MODERN-12.1":   "counters are internal; 0xD2 payloads opening nothing is in 2.1/reject-vectors",
	"CLASSIC-5.5":   "see CLASSIC-5.5/1 and CLASSIC-5.5/2",
	"CLASSIC-2.1":   "see CLASSIC-2.1/1 and CLASSIC-2.1/2",
	"CLASSIC-2.2":   "see CLASSIC-2.2/1-3",
	"CLASSIC-3.3":   "see CLASSIC-3.3/1 and CLASSIC-3.3/2",
	"CLASSIC-4.5":   "see CLASSIC-4.5/1-3",
	"CLASSIC-5.4":   "see CLASSIC-5.4/1 and CLASSIC-5.4/2",
	"CLASSIC-6.2":   "see CLASSIC-6.2/1 and CLASSIC-6.2/2",
	"CLASSIC-6.6":   "see CLASSIC-6.6/1 and CLASSIC-6.6/2",
}

// extraCoverage maps requirements to cases that test them besides the
// case's own Requirement.
var extraCoverage = map[string][]string{
	"CLASSIC-2.2/1": {"2.1/client-payload-format"},
	"CLASSIC-2.3":   {"2.1/reject-vectors"},
	"CLASSIC-4.1":   {"4.1/bad-mac", "4.1/unknown-group", "4.1/port-not-allowed", "4.1/address-not-allowed"},
	"CLASSIC-4.8":   {"2.1/reject-vectors"},
	"CLASSIC-5.2":   {"2.5/case-variant-replay"},
	"CLASSIC-11.1":  {"2.1/client-payload-format"},
	"CLASSIC-6.1":   {"6.7/independent-doors"},
	"MODERN-12.1":   {"2.1/reject-vectors"},
}

// WriteCoverage prints every MUST / MUST NOT requirement of the spec with
// the cases covering it or why it is not black-box testable.
func WriteCoverage(w io.Writer, spec string) {
	reqs := ParseRequirements(spec)
	byReq := map[string][]string{}
	for _, c := range Cases() {
		byReq[c.Requirement] = append(byReq[c.Requirement], c.ID)
	}
	for r, ids := range extraCoverage {
		byReq[r] = append(byReq[r], ids...)
	}
	covered, untestable, missing := 0, 0, 0
	for _, r := range reqs {
		if !hasMust(r.Levels) {
			continue
		}
		ids := byReq[r.ID]
		sort.Strings(ids)
		fmt.Fprintf(w, "%-15s %s\n", r.ID, truncate(r.Sentence, 150))
		switch {
		case len(ids) > 0:
			covered++
			fmt.Fprintf(w, "                covered by: %s\n", strings.Join(ids, ", "))
		case notTestable[r.ID] != "":
			untestable++
			fmt.Fprintf(w, "                not black-box testable: %s\n", notTestable[r.ID])
		default:
			missing++
			fmt.Fprintf(w, "                NOT COVERED\n")
		}
	}
	fmt.Fprintf(w, "\n%d MUST requirements: %d covered, %d not black-box testable, %d not covered\n",
		covered+untestable+missing, covered, untestable, missing)
}

func hasMust(levels []string) bool {
	for _, l := range levels {
		if strings.HasPrefix(l, "MUST") {
			return true
		}
	}
	return false
}
