package firewall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// scriptRig is a pair of fake firewall scripts that log their calls to a file
// and print whatever the reply file holds (or "0").
type scriptRig struct {
	dir, add, del, journal string
}

func newScriptRig(t *testing.T) *scriptRig {
	t.Helper()
	dir := t.TempDir()
	rig := &scriptRig{dir: dir, add: filepath.Join(dir, "fw-add"), del: filepath.Join(dir, "fw-del"), journal: filepath.Join(dir, "journal")}
	body := `#!/bin/sh
echo "$(basename "$0") $*" >> '` + dir + `/calls'
if [ -f '` + dir + `/sleep' ]; then sleep 5; fi
if [ -f '` + dir + `/reply' ]; then cat '` + dir + `/reply'; else echo 0; fi
if [ -f '` + dir + `/exit' ]; then exit 3; fi
`
	for _, p := range []string{rig.add, rig.del} {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return rig
}

func (rig *scriptRig) backend(t *testing.T) *Script {
	return NewScript(ScriptConfig{Add: rig.add, Del: rig.del, Journal: rig.journal, Timeout: 2 * time.Second})
}

func (rig *scriptRig) set(t *testing.T, name, content string) {
	t.Helper()
	p := filepath.Join(rig.dir, name)
	if content == "" {
		os.Remove(p)
		return
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// calls returns and forgets the script calls so far.
func (rig *scriptRig) calls(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rig.dir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(rig.dir, "calls"))
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func (rig *scriptRig) journalLines(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rig.journal)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("script calls:\n got %q\nwant %q", got, want)
	}
}

// TestScriptBackend: the 0.81 argument list (CLASSIC-7.1) and output
// protocol (CLASSIC-7.2), with the journal written before each add
// (CLASSIC-7.3).
func TestScriptBackend(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	s := rig.backend(t)
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	broad, narrow := fakeRule(0), fakeRule(40000)
	broad.Iface = "" // passed to the script as "any"
	if err := s.Add(ctx, broad); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, narrow); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-add any 198.18.0.2 0 198.18.0.1 22", "fw-add veth0 198.18.0.2 40000 198.18.0.1 22")
	if err := s.Delete(ctx, broad); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-del any 198.18.0.2 0 198.18.0.1 22")
	wantCalls(t, rig.journalLines(t), "add 1 any 198.18.0.2 0 198.18.0.1 22", "add 2 veth0 198.18.0.2 40000 198.18.0.1 22", "del 1")

	// A reported failure is a *ScriptError and the rule counts as not added.
	rig.set(t, "reply", "1 3 iptables: Bad rule\n")
	other := fakeRule(40001)
	err := s.Add(ctx, other)
	var se *ScriptError
	var re *RuleError
	if !errors.As(err, &se) || se.Errno != 1 || se.Level != 3 || se.Message != "iptables: Bad rule" || se.Rule != other {
		t.Fatalf("want ScriptError, got %v", err)
	}
	if !errors.As(err, &re) || re.Backend != "script" || !strings.Contains(err.Error(), other.String()) {
		t.Fatalf("error does not name backend and rule: %v", err)
	}
	if err := s.Delete(ctx, other); !errors.Is(err, ErrUnknownRule) {
		t.Fatalf("Delete of failed Add: %v", err)
	}
	// Levels 4..7 are warnings: success.
	rig.set(t, "reply", "17 4 already there\n")
	if err := s.Add(ctx, other); err != nil {
		t.Fatalf("warning reply: %v", err)
	}
	// Garbage and a silent non-zero exit are errors naming script and output.
	rig.set(t, "reply", "what?\n")
	if err := s.Add(ctx, fakeRule(40002)); !errors.Is(err, ErrScriptOutput) || !strings.Contains(err.Error(), "what?") || !strings.Contains(err.Error(), rig.add) {
		t.Fatalf("garbage reply: %v", err)
	}
	rig.set(t, "reply", "\n")
	rig.set(t, "exit", "1")
	if err := s.Add(ctx, fakeRule(40003)); !errors.Is(err, ErrScriptOutput) || !strings.Contains(err.Error(), "exit status 3") {
		t.Fatalf("silent failure: %v", err)
	}
	rig.set(t, "exit", "")
	rig.set(t, "reply", "")
	rig.calls(t)

	// Close deletes what is live (narrow, other) and the doubtful adds (40002, 40003).
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := rig.calls(t)
	if len(got) != 4 {
		t.Fatalf("Close ran %q", got)
	}
	for _, sp := range []string{"40000", "40001", "40002", "40003"} {
		if !strings.Contains(strings.Join(got, "\n"), "fw-del veth0 198.18.0.2 "+sp+" ") {
			t.Errorf("Close did not delete sport %s: %q", sp, got)
		}
	}
	if l := rig.journalLines(t); len(l) != 0 {
		t.Errorf("journal after Close: %q", l)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Add(ctx, narrow); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Add after Close: %v", err)
	}
}

// TestScriptJournalReplay: rules a killed run added are deleted at the
// next start (CLASSIC-7.3, CLASSIC-6.9).
func TestScriptJournalReplay(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	crashed := rig.backend(t)
	if err := crashed.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for _, r := range []Rule{fakeRule(0), fakeRule(40000), fakeRule(40001)} {
		if err := crashed.Add(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if err := crashed.Delete(ctx, fakeRule(40000)); err != nil {
		t.Fatal(err)
	}
	rig.calls(t)
	// No Close: the process "died". A new instance cleans up at Start, even
	// if a delete fails (after a reboot the rule is already gone).
	rig.set(t, "reply", "2 3 no such rule\n")
	next := rig.backend(t)
	if err := next.Start(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-del veth0 198.18.0.2 0 198.18.0.1 22", "fw-del veth0 198.18.0.2 40001 198.18.0.1 22")
	if l := rig.journalLines(t); len(l) != 0 {
		t.Errorf("journal after replay: %q", l)
	}
	rig.set(t, "reply", "")
	if err := next.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if c := rig.calls(t); len(c) != 0 {
		t.Errorf("Close after replay ran %q", c)
	}
}

func TestScriptTimeout(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	s := NewScript(ScriptConfig{Add: rig.add, Del: rig.del, Timeout: 200 * time.Millisecond})
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rig.set(t, "sleep", "1")
	err := s.Add(ctx, fakeRule(0))
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), rig.add) {
		t.Fatalf("want timeout naming the script, got %v", err)
	}
	rig.set(t, "sleep", "")
	if err := s.Close(ctx); err != nil { // deletes the doubtful rule
		t.Fatal(err)
	}
}

func TestScriptStartNeedsScripts(t *testing.T) {
	if err := NewScript(ScriptConfig{}).Start(context.Background()); err == nil {
		t.Fatal("Start without scripts succeeded")
	}
}
