//go:build linux

package conformance

import (
	"fmt"
	"io"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Requirement is one identified requirement of spec/doorman.md.
type Requirement struct {
	ID      string // CLASSIC-4.3 or CLASSIC-2.1/2
	Section string // "4"
	// Text is the requirement's own text: for an ID that opens a
	// paragraph, its paragraphs up to the next such ID without the parts
	// that carry IDs of their own; for an ID that closes a clause
	// "(**ID/n**)", that clause.
	Text   string
	Levels []string // RFC 2119 keywords in Text, in order of appearance
	Parts  []string // IDs of numbered parts (CLASSIC-2.1/1, ...), for a leading ID
}

// Level returns the strongest keyword of r ("MUST", "MUST NOT",
// "SHOULD", ...) or "" when its text has none.
func (r Requirement) Level() string {
	for _, k := range []string{"MUST", "MUST NOT", "SHOULD", "SHOULD NOT", "MAY"} {
		if slices.Contains(r.Levels, k) {
			return k
		}
	}
	return ""
}

var (
	// A bold ID defines a requirement where it opens a paragraph, or in
	// parentheses at the end of the clause it names: "(**ID/n**)" or
	// "(**ID/n**; note)". A bold ID anywhere else is a reference.
	reqIDRE     = regexp.MustCompile(`\*\*((?:CLASSIC|MODERN)-(\d+)\.\d+(?:/\d+)?)\*\*`)
	markerRE    = regexp.MustCompile(`\(\*\*((?:CLASSIC|MODERN)-(\d+)\.\d+(?:/\d+)?)\*\*[);]`)
	keywordRE   = regexp.MustCompile(`\b(MUST NOT|MUST|SHOULD NOT|SHOULD|MAY)\b`)
	headingRE   = regexp.MustCompile(`^#{1,6} `)
	emptyClause = regexp.MustCompile(`^[\s;,.:()]*$`)
)

// ParseRequirements returns every requirement the spec defines, in order,
// with the text that belongs to it. It splits the spec into paragraphs
// (blank lines and headings end them) and the paragraphs into sentences;
// a sentence belongs to the ID that opened the current block unless it
// holds "(**ID/n**)" markers, whose clauses (up to each marker, the rest
// of the sentence going to the last one) belong to those IDs. A clause
// without a keyword of its own continues the one before it in the
// sentence ("... MUST remove it (**A/1**), checked every second
// (**A/2**)") and takes its keywords. Nothing in a sentence (periods in
// "0.81" or "CLASSIC-2.4", semicolons, nested parentheses) can make it
// lose an ID: every defining ID gets an entry.
func ParseRequirements(spec string) []Requirement {
	var (
		out     []Requirement
		index   = map[string]int{}
		current = -1 // the block's leading requirement
		extra   = map[int][]string{}
	)
	add := func(id, section string) int {
		if i, ok := index[id]; ok {
			return i
		}
		out = append(out, Requirement{ID: id, Section: section})
		index[id] = len(out) - 1
		return len(out) - 1
	}
	appendText := func(i int, s string) {
		s = strings.TrimSpace(s)
		if i < 0 || emptyClause.MatchString(s) {
			return
		}
		if out[i].Text == "" {
			out[i].Text = strings.TrimLeft(s, ";,: ")
			return
		}
		if !strings.ContainsRune(";,:.", rune(s[0])) {
			out[i].Text += " "
		}
		out[i].Text += s
	}
	for _, para := range paragraphs(spec) {
		if headingRE.MatchString(para) {
			current = -1
			continue
		}
		p := strings.Join(strings.Fields(para), " ")
		if m := reqIDRE.FindStringSubmatchIndex(p); m != nil && m[0] == 0 {
			current = add(p[m[2]:m[3]], p[m[4]:m[5]])
			p = p[m[1]:]
		}
		for _, sent := range sentences(p) {
			locs := markerRE.FindAllStringSubmatchIndex(sent, -1)
			if len(locs) == 0 {
				appendText(current, sent)
				continue
			}
			prev, last := 0, -1
			var before []string // keywords of the sentence's clauses so far
			for _, l := range locs {
				last = add(sent[l[2]:l[3]], sent[l[4]:l[5]])
				clause := sent[prev:l[0]]
				kws := keywordRE.FindAllString(clause, -1)
				if len(kws) == 0 {
					extra[last] = append(extra[last], before...)
				}
				before = append(before, kws...)
				appendText(last, clause)
				if current >= 0 && current != last && !slices.Contains(out[current].Parts, out[last].ID) {
					out[current].Parts = append(out[current].Parts, out[last].ID)
				}
				// The marker's ")" closes it; a ";" starts a note that
				// belongs to the text.
				prev = l[1] - 1
				if sent[prev] == ')' {
					prev++
				}
			}
			appendText(last, sent[prev:])
		}
	}
	for i := range out {
		out[i].Text = reqIDRE.ReplaceAllString(out[i].Text, "$1")
		out[i].Levels = nil
		for _, k := range append(keywordRE.FindAllString(out[i].Text, -1), extra[i]...) {
			if !slices.Contains(out[i].Levels, k) {
				out[i].Levels = append(out[i].Levels, k)
			}
		}
	}
	return out
}

// paragraphs splits markdown at blank lines; a heading line is a
// paragraph of its own.
func paragraphs(s string) []string {
	var out []string
	var cur []string
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.Join(cur, "\n"))
			cur = nil
		}
	}
	for _, line := range strings.Split(s, "\n") {
		switch {
		case strings.TrimSpace(line) == "":
			flush()
		case headingRE.MatchString(line):
			flush()
			out = append(out, line)
		default:
			cur = append(cur, line)
		}
	}
	flush()
	return out
}

// sentences splits normalized text after '.', '!' or '?' followed by a
// space and an upper-case letter, '(', '`' or '*': "0.81", "e.g. 1 s" and
// "CLASSIC-2.4" stay whole.
func sentences(p string) []string {
	var out []string
	start := 0
	for i := 0; i+2 < len(p); i++ {
		if !strings.ContainsRune(".!?", rune(p[i])) || p[i+1] != ' ' {
			continue
		}
		c := p[i+2]
		if c >= 'A' && c <= 'Z' || c == '(' || c == '`' || c == '*' {
			out = append(out, p[start:i+1])
			start = i + 2
		}
	}
	if start < len(p) {
		out = append(out, p[start:])
	}
	return out
}

// Coverage status of a requirement.
const (
	StatusCovered    = "covered"
	StatusPartly     = "partly covered"
	StatusUntestable = "not black-box testable"
	StatusGap        = "not covered"
	StatusParts      = "see its parts"
	StatusUnknown    = "NO CASE AND NO REASON"
)

// CoverageEntry is one requirement of the spec with what the suite does
// about it.
type CoverageEntry struct {
	Requirement
	Status string
	Cases  []string // case IDs that check it
	Why    string   // for partly covered, untestable and gaps
}

// notTestable lists requirements the suite cannot judge from packets,
// port reachability and the files it hands the implementation, with the
// reason. A requirement in this list is still in the report.
var notTestable = map[string]string{
	"CLASSIC-3.2":    "canonical re-encoding is internal; its observable part is the reject and lenient vectors",
	"CLASSIC-3.3/2":  "how a tag is drawn cannot be seen; 3.3/client-tag-freshness catches repeats only",
	"CLASSIC-4.5":    "debug logs of frame-level drops are log content",
	"CLASSIC-4.5/1":  "log content is not a wire behaviour (tests never scrape logs)",
	"CLASSIC-4.5/2":  "log content is not a wire behaviour",
	"CLASSIC-4.5/3":  "log rate and counters are internal",
	"CLASSIC-4.6":    "constant-time comparison cannot be observed through the network at this resolution",
	"CLASSIC-4.7":    "log content is not a wire behaviour",
	"CLASSIC-5.3":    "log content is not a wire behaviour",
	"CLASSIC-5.4/2":  "warnings are logs",
	"CLASSIC-5.5":    "durability against power loss needs a power loss",
	"CLASSIC-6.2/2":  "kernel enforcement and fast narrowing look alike from outside; 6.2/single-connection tests the effect",
	"CLASSIC-6.10":   "needs a firewall that refuses rules on demand, which an adapter cannot provide for every backend",
	"CLASSIC-7.1":    "script invocation is visible only to the scripts; the doormand-script adapter runs 0.81-style scripts through every door case",
	"CLASSIC-7.2":    "script output handling needs scripts that fail on demand (daemon/firewall unit tests)",
	"CLASSIC-7.3":    "the journal is internal; its effect is 6.9/leftovers-removed-at-start with the script adapter",
	"CLASSIC-8.1":    "configuration syntax is the adapter's to render (daemon/config tests)",
	"CLASSIC-8.2":    "configuration warnings are logs",
	"CLASSIC-8.3":    "configuration errors are messages",
	"CLASSIC-8.4":    "keywords and defaults are configuration; the suite sets waitfor, connection-delay-1/2, hash-archive and hash-archive-size through the model and relies on the rest being defaults",
	"CLASSIC-8.5":    "backend selection is configuration; the doormand-script adapter exercises it",
	"CLASSIC-8.6":    "file ownership checks are local, and adapters run daemons in debug mode",
	"CLASSIC-9.1":    "guest list syntax is the adapter's to render",
	"CLASSIC-9.3":    "name and secret alphabets are syntax; 2.2/fields-at-limits knocks as a guest whose name has every special character and whose secret is 255 characters",
	"CLASSIC-9.4":    "guest list errors are messages; 9.4/broken-reload-keeps-list covers CLASSIC-9.4/2",
	"CLASSIC-9.5":    "file ownership checks are local, and adapters run daemons in debug mode",
	"CLASSIC-10.1":   "client configuration syntax is the adapter's to render",
	"CLASSIC-10.2":   "client configuration errors are messages",
	"CLASSIC-10.3":   "file permission checks are local",
	"CLASSIC-11.3":   "command-line syntax is what the adapter renders",
	"CLASSIC-11.4":   "terminal echo needs a pty",
	"CLASSIC-5.5/3":  "a failed or short write cannot be caused from outside (daemon/replay tests fill a tmpfs)",
	"CLASSIC-5.5/4":  "damage to the implementation's store file is local",
	"CLASSIC-5.7/1":  "locks and the offline tools are local",
	"CLASSIC-5.7/3":  "putting back a vanished file is local",
	"CLASSIC-5.8":    "where and how state files are written is local",
	"CLASSIC-6.4/2":  "how the doorman learns the admitted port is internal; 6.2/single-connection tests the effect",
	"CLASSIC-6.10/2": "needs a firewall program that hangs or garbles on demand (daemon/firewall tests)",
	"CLASSIC-11.5/1": "help text is local to the client",
	"CLASSIC-11.5/2": "how the client reads a secret is local (cmd/knock tests)",
	"CLASSIC-11.5/3": "file permission checks are local",

	"MODERN-12.11/2": "whether verification is queued, and when the clock is read, are internal (daemon tests fill the queue)",
	"MODERN-12.17":   "dropping the time of a key that left the guest list is internal (a MAY)",
	"MODERN-12.20":   "the warning for a secret that is a bare public key is a log record",
}

// notCovered lists requirements that could be tested black-box but are
// not (yet), with what it would take.
var notCovered = map[string]string{
	"CLASSIC-6.5":    "a SYN whose handshake never completes needs a raw TCP client and a SYN-ACK dropped at the client",
	"CLASSIC-6.5/2":  "a spoofed SYN that claims the door needs a raw TCP client (daemon/firewall and daemon tests cover it)",
	"CLASSIC-6.2/3":  "a bare ACK before the SYN needs a raw TCP client (daemon/firewall tests cover it)",
	"CLASSIC-6.3/2":  "a door left by a killed run, checked gone after waitfor without a restart: a case to add",
	"CLASSIC-6.12":   "needs a max-doors setting in the model, and an adapter to render it",
	"CLASSIC-5.7/2":  "deleting the store under the running daemon needs the store's path in the model: a case to add",
	"CLASSIC-11.6/1": "knock --wait's second knock: a client case to add",
	"CLASSIC-11.6/2": "knock --wait's failure report: a client case to add",
}

// withoutKeyword lists requirements whose text has no RFC 2119 keyword and
// no numbered parts, with what carries their force instead. Any other such
// ID is reported, since a requirement the suite cannot tell the level of
// is probably worded wrong.
var withoutKeyword = map[string]string{
	"MODERN-12.7":  "defines the request's layout; what a request must be is MODERN-12.8/1 and MODERN-12.8/2",
	"MODERN-12.23": "describes the key commands; what they must do is MODERN-12.2/1 and MODERN-12.2/2",
}

// partly lists requirements whose cases check only some of what they
// say, with what is left out.
var partly = map[string]string{
	"CLASSIC-2.6":   "the first-byte rule shows only as knocks refused (non-digit and 0xD2 vectors, junk); that such payloads are not logged is log content",
	"CLASSIC-6.6/2": "the bound is checked once per run, with connection-delay-2 = 1 s",
	"CLASSIC-9.2":   "only host bits beyond the prefix; service names and numbers outside 1-65535 are syntax the adapter renders",

	"MODERN-12.2/1":  "how a key is drawn cannot be seen; the knocker's keygen is checked for clamping (the suite writes the doorman's key itself, so doormand keygen is left to cmd/doormand tests)",
	"MODERN-12.2/2":  "the knocker's keygen only; doormand keygen is a local command (cmd/doormand tests)",
	"MODERN-12.4":    "counting the knock as an unsupported version is a counter",
	"MODERN-12.6/2":  "comparing in constant time, and before any public-key work, cannot be observed through the network",
	"MODERN-12.8/1":  "logging the field at fault is log content",
	"MODERN-12.10":   "how the ephemeral key is drawn cannot be seen; 20 knocks with 20 keys catch reuse only",
	"MODERN-12.11":   "the order shows on the wire only where it changes the outcome: knocks with a right mac1 that do not decrypt use up their source's budget (step 4 before 5), and knocks refused at any step leave the guest's time alone (step 12 last); the reasons are counters and logs",
	"MODERN-12.12":   "the bound on the sources tracked at once needs a flood from more addresses than the topology has",
	"MODERN-12.14":   "the skew in the log record is log content",
	"MODERN-12.15":   "an IPv4-mapped packet source is not sent: CLASSIC-4.3/2 drops such an IPv6 packet before any check (the rule matters where knocks come from a dual-stack socket)",
	"MODERN-12.17/2": "a crash at one point only (SIGKILL after the door opened); durability against power loss needs a power loss",
	"MODERN-12.19":   "counting, log levels and rate-bounded logging are internal or log content; constant-time mac1 comparison cannot be observed",
	"MODERN-12.20/1": "that the report names the file, the line and the text is a message",
	"MODERN-12.20/3": "the count is a counter",
	"MODERN-12.21":   "the keywords are set through the model and honoured as 12.14/time-window (modern-window), 12.12/per-source-rate (modern-rate, modern-burst), 12.20/classic-off and 12.21/reload-new-key (private-key) show; the default path, the ownership and mode checks (adapters run in debug mode) and error texts are local",
	"MODERN-12.21/2": "that the refusal names the file and the command is a message",
	"MODERN-12.22":   "refusing a key where a path belongs, `~/` and relative paths, and error texts are local (knocker tests)",
}

// Coverage returns every requirement of spec with its status. The list is
// derived from the spec's IDs themselves: a requirement the suite neither
// checks nor explains has StatusUnknown.
func Coverage(spec string) []CoverageEntry {
	byReq := map[string][]string{}
	for _, c := range Cases() {
		for _, r := range append([]string{c.Requirement}, c.Also...) {
			byReq[r] = append(byReq[r], c.ID)
		}
	}
	var out []CoverageEntry
	for _, r := range ParseRequirements(spec) {
		e := CoverageEntry{Requirement: r, Cases: byReq[r.ID]}
		sort.Strings(e.Cases)
		switch {
		case len(e.Cases) > 0 && partly[r.ID] != "":
			e.Status, e.Why = StatusPartly, partly[r.ID]
		case len(e.Cases) > 0:
			e.Status = StatusCovered
		case notTestable[r.ID] != "":
			e.Status, e.Why = StatusUntestable, notTestable[r.ID]
		case notCovered[r.ID] != "":
			e.Status, e.Why = StatusGap, notCovered[r.ID]
		case r.Level() == "" && len(r.Parts) > 0:
			e.Status, e.Why = StatusParts, strings.Join(r.Parts, ", ")
		default:
			e.Status = StatusUnknown
		}
		out = append(out, e)
	}
	return out
}

// CheckCoverage returns an error naming every requirement of spec that
// has no status (no case and no reason), every requirement without an
// RFC 2119 keyword and without parts, and every reason given for an ID
// the spec does not define.
func CheckCoverage(spec string) error {
	var bad []string
	ids := map[string]bool{}
	for _, e := range Coverage(spec) {
		ids[e.ID] = true
		if e.Status == StatusUnknown {
			bad = append(bad, e.ID+": no case checks it and no reason says why not")
		}
		if e.Level() == "" && len(e.Parts) == 0 && withoutKeyword[e.ID] == "" {
			bad = append(bad, e.ID+": its text has no MUST, SHOULD or MAY")
		}
	}
	for _, m := range []map[string]string{notTestable, notCovered, partly, withoutKeyword} {
		for id := range m {
			if !ids[id] {
				bad = append(bad, id+": a reason is given, but the spec defines no such requirement")
			}
		}
	}
	sort.Strings(bad)
	if len(bad) > 0 {
		return fmt.Errorf("coverage report incomplete:\n  %s", strings.Join(bad, "\n  "))
	}
	return nil
}

// WriteCoverage prints every requirement of spec, grouped by section, with
// its level and the cases covering it or the reason why none does, then
// the requirements that are not black-box testable and those not covered,
// and a summary by level. It returns CheckCoverage's verdict.
func WriteCoverage(w io.Writer, spec string) error {
	entries := Coverage(spec)
	section := ""
	for _, e := range entries {
		if e.Section != section {
			section = e.Section
			title := sectionTitles[section]
			if title == "" {
				title = "Section " + section
			}
			fmt.Fprintf(w, "\n%s\n", title)
		}
		lvl := e.Level()
		if lvl == "" {
			lvl = "-"
		}
		fmt.Fprintf(w, "  %-15s %-10s %s\n", e.ID, lvl, truncate(e.Text, 140))
		if why := withoutKeyword[e.ID]; why != "" {
			fmt.Fprintf(w, "  %-15s %-10s no keyword: %s\n", "", "", why)
		}
		switch e.Status {
		case StatusCovered:
			fmt.Fprintf(w, "  %-15s %-10s covered by: %s\n", "", "", strings.Join(e.Cases, ", "))
		case StatusPartly:
			fmt.Fprintf(w, "  %-15s %-10s partly covered by: %s; not checked: %s\n", "", "", strings.Join(e.Cases, ", "), e.Why)
		default:
			fmt.Fprintf(w, "  %-15s %-10s %s: %s\n", "", "", e.Status, e.Why)
		}
	}
	for _, st := range []string{StatusUntestable, StatusGap, StatusUnknown} {
		var rows []CoverageEntry
		for _, e := range entries {
			if e.Status == st {
				rows = append(rows, e)
			}
		}
		if len(rows) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s (%d):\n", strings.ToUpper(st[:1])+st[1:], len(rows))
		for _, e := range rows {
			fmt.Fprintf(w, "  %-15s %-10s %s\n", e.ID, e.Level(), e.Why)
		}
	}
	type tally struct{ n, covered, partly, untestable, gap, parts, unknown int }
	byLevel := map[string]*tally{}
	var levels []string
	for _, e := range entries {
		l := e.Level()
		if l == "" {
			l = "(parts only)"
		}
		if byLevel[l] == nil {
			byLevel[l] = &tally{}
			levels = append(levels, l)
		}
		t := byLevel[l]
		t.n++
		switch e.Status {
		case StatusCovered:
			t.covered++
		case StatusPartly:
			t.partly++
		case StatusUntestable:
			t.untestable++
		case StatusGap:
			t.gap++
		case StatusParts:
			t.parts++
		default:
			t.unknown++
		}
	}
	sort.Strings(levels)
	fmt.Fprintf(w, "\n%d requirement IDs in the spec:\n", len(entries))
	for _, l := range levels {
		t := byLevel[l]
		fmt.Fprintf(w, "  %-13s %3d: %d covered, %d partly, %d not black-box testable, %d not covered, %d through their parts, %d unaccounted for\n",
			l, t.n, t.covered, t.partly, t.untestable, t.gap, t.parts, t.unknown)
	}
	return CheckCoverage(spec)
}

// truncate shortens s to at most n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
