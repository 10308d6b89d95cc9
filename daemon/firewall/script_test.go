package firewall

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// backend returns a script backend on the rig whose guard table is a Fake
// (the real one needs root; TestIntegrationScript covers it).
func (rig *scriptRig) backend(t *testing.T) (*Script, *Fake) {
	s := NewScript(ScriptConfig{Add: rig.add, Del: rig.del, Journal: rig.journal, Timeout: 2 * time.Second})
	f := NewFake()
	s.doors = f
	s.retryFirst = 50 * time.Millisecond
	return s, f
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

func sdoor(id uint64, st DoorState, sport uint16) Door {
	d := fakeDoor(id, st, sport)
	d.Iface = "veth0"
	return d
}

func applyOne(t *testing.T, b backend, d Door) error {
	t.Helper()
	return b.Apply(context.Background(), []Door{d})[0]
}

// TestScriptBackend: the 0.81 argument list (CLASSIC-7.1) and output
// protocol (CLASSIC-7.2), with the journal written before each add
// (CLASSIC-7.3), through a door's whole life.
func TestScriptBackend(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	s, guard := rig.backend(t)
	if err := s.Start(ctx, Notify{}); err != nil {
		t.Fatal(err)
	}
	d := sdoor(1, DoorArmed, 0)
	d.Iface = "" // passed to the script as "any"
	if err := applyOne(t, s, d); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-add any 198.18.0.2 0 198.18.0.1 22")
	d.State, d.SrcPort = DoorClaimed, 40000
	if err := applyOne(t, s, d); err != nil {
		t.Fatal(err)
	}
	// 0.81's order: the narrow rule first, then the broad one goes.
	wantCalls(t, rig.calls(t), "fw-add any 198.18.0.2 40000 198.18.0.1 22", "fw-del any 198.18.0.2 0 198.18.0.1 22")
	d.State = DoorNarrow
	if err := applyOne(t, s, d); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t))
	if g := guard.Doors(); len(g) != 1 || g[0].State != DoorNarrow {
		t.Fatalf("guard doors: %+v", g)
	}
	d.State = DoorClosed
	if err := applyOne(t, s, d); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-del any 198.18.0.2 40000 198.18.0.1 22")
	wantCalls(t, rig.journalLines(t), "add 1 any 198.18.0.2 0 198.18.0.1 22", "add 2 any 198.18.0.2 40000 198.18.0.1 22", "del 1", "del 2")
	if len(guard.Doors()) != 0 {
		t.Fatal("guard still holds the closed door")
	}

	// A reported failure is a *ScriptError and the door counts as not armed.
	rig.set(t, "reply", "1 3 iptables: Bad rule\n")
	other := sdoor(2, DoorArmed, 0)
	err := applyOne(t, s, other)
	var se *ScriptError
	var de *DoorError
	if !errors.As(err, &se) || se.Errno != 1 || se.Level != 3 || se.Message != "iptables: Bad rule" {
		t.Fatalf("want ScriptError, got %v", err)
	}
	if !errors.As(err, &de) || de.Backend != "script" || !strings.Contains(err.Error(), "door 2") {
		t.Fatalf("error does not name backend and door: %v", err)
	}
	if len(guard.Doors()) != 0 || guard.Blocked(other) {
		t.Fatal("a reported failure left the guard armed or blocked")
	}
	// Levels 4..7 are warnings: success.
	rig.set(t, "reply", "17 4 already there\n")
	if err := applyOne(t, s, other); err != nil {
		t.Fatalf("warning reply: %v", err)
	}
	rig.set(t, "reply", "")
	rig.calls(t)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-del veth0 198.18.0.2 0 198.18.0.1 22")
	if l := rig.journalLines(t); len(l) != 0 {
		t.Errorf("journal after Close: %q", l)
	}
	if err := s.Close(ctx); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := applyOne(t, s, sdoor(3, DoorArmed, 0)); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("Apply after Close: %v", err)
	}
}

// TestScriptStuckRule: an add that printed garbage or exited silently may
// have left its rule: the key is blocked in the guard and the rule's delete
// retried until it works; then the key is unblocked (CLASSIC-6.10,
// CLASSIC-6.10/2).
func TestScriptStuckRule(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, reply, exit string }{{"garbage", "what?\n", ""}, {"silent-exit", "\n", "1"}} {
		t.Run(tc.name, func(t *testing.T) {
			rig := newScriptRig(t)
			s, guard := rig.backend(t)
			var mu sync.Mutex
			var faults []Fault
			if err := s.Start(ctx, Notify{Fault: func(f Fault) { mu.Lock(); faults = append(faults, f); mu.Unlock() }}); err != nil {
				t.Fatal(err)
			}
			defer s.Close(ctx)
			rig.set(t, "reply", tc.reply)
			rig.set(t, "exit", tc.exit)
			d := sdoor(1, DoorArmed, 0)
			err := applyOne(t, s, d)
			if !errors.Is(err, ErrScriptOutput) || !strings.Contains(err.Error(), rig.add) {
				t.Fatalf("want ErrScriptOutput naming the script, got %v", err)
			}
			if !guard.Blocked(d) {
				t.Fatal("the stuck rule's key is not blocked")
			}
			// The delete fails too, for a while.
			rig.set(t, "reply", "2 3 iptables busy\n")
			rig.set(t, "exit", "")
			time.Sleep(200 * time.Millisecond)
			if !guard.Blocked(d) {
				t.Fatal("unblocked while the rule's delete still fails")
			}
			rig.set(t, "reply", "")
			deadline := time.Now().Add(5 * time.Second)
			for guard.Blocked(d) {
				if time.Now().After(deadline) {
					t.Fatal("the stuck rule was never removed")
				}
				time.Sleep(20 * time.Millisecond)
			}
			calls := strings.Join(rig.calls(t), "\n")
			if !strings.Contains(calls, "fw-del veth0 198.18.0.2 0 198.18.0.1 22") {
				t.Fatalf("no delete of the stuck rule: %s", calls)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(faults) == 0 || !faults[len(faults)-1].Repaired {
				t.Fatalf("faults: %+v, want the last one repaired", faults)
			}
		})
	}
}

// TestScriptHungKilled: an add script that hangs is killed with its whole
// process group at the timeout, and its rule is treated as stuck.
func TestScriptHungKilled(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	pidFile := filepath.Join(rig.dir, "child")
	hung := "#!/bin/sh\nsleep 60 &\necho $! > '" + pidFile + "'\nwait\n"
	if err := os.WriteFile(rig.add, []byte(hung), 0o755); err != nil {
		t.Fatal(err)
	}
	s, guard := rig.backend(t)
	s.cfg.Timeout = 300 * time.Millisecond
	if err := s.Start(ctx, Notify{}); err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	d := sdoor(1, DoorArmed, 0)
	err := applyOne(t, s, d)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), rig.add) {
		t.Fatalf("want a timeout naming the script, got %v", err)
	}
	if !guard.Blocked(d) {
		t.Fatal("a hung add's key is not blocked")
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid := strings.TrimSpace(string(b))
	deadline := time.Now().Add(2 * time.Second)
	for {
		stat, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break // gone, or a zombie waiting for init
		}
		if time.Now().After(deadline) {
			t.Fatalf("the hung script's child %s survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestScriptJournalReplay: rules a killed run added are deleted at the
// next start (CLASSIC-7.3, CLASSIC-6.9).
func TestScriptJournalReplay(t *testing.T) {
	ctx := context.Background()
	rig := newScriptRig(t)
	crashed, _ := rig.backend(t)
	if err := crashed.Start(ctx, Notify{}); err != nil {
		t.Fatal(err)
	}
	if err := applyOne(t, crashed, sdoor(1, DoorArmed, 0)); err != nil {
		t.Fatal(err)
	}
	d2 := sdoor(2, DoorArmed, 0)
	d2.Port = 23
	if err := applyOne(t, crashed, d2); err != nil {
		t.Fatal(err)
	}
	d2.State, d2.SrcPort = DoorClaimed, 40001
	if err := applyOne(t, crashed, d2); err != nil {
		t.Fatal(err)
	}
	rig.calls(t)
	// No Close: the process "died". A new instance cleans up at Start, even
	// if a delete fails (after a reboot the rule is already gone).
	crashed.mu.Lock()
	crashed.started = false
	close(crashed.stop)
	crashed.mu.Unlock()
	rig.set(t, "reply", "2 3 no such rule\n")
	next, guard := rig.backend(t)
	if err := next.Start(ctx, Notify{}); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, rig.calls(t), "fw-del veth0 198.18.0.2 0 198.18.0.1 22", "fw-del veth0 198.18.0.2 40001 198.18.0.1 23")
	// Those deletes failed: the rules are stuck, their keys blocked, and
	// removed once the script works again.
	if !guard.Blocked(sdoor(1, DoorArmed, 0)) {
		t.Fatal("leftover whose delete failed is not blocked")
	}
	rig.set(t, "reply", "")
	deadline := time.Now().Add(5 * time.Second)
	for guard.Blocked(sdoor(1, DoorArmed, 0)) || guard.Blocked(d2) {
		if time.Now().After(deadline) {
			t.Fatal("leftovers never removed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := next.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if l := rig.journalLines(t); len(l) != 0 {
		t.Errorf("journal after replay and Close: %q", l)
	}
}

func TestScriptStartNeedsScripts(t *testing.T) {
	if err := NewScript(ScriptConfig{}).Start(context.Background(), Notify{}); err == nil {
		t.Fatal("Start without scripts succeeded")
	}
}
