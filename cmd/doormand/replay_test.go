package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/daemon/replay"
)

// TestReplayToolsRefuseWhileRunning: --import-archive, --prune-replay and
// --repair-replay take the store's lock, so beside a running doormand
// (here: the store held open by this process) they fail and name it,
// leaving the store alone (audit item 6, CLASSIC-5.7/1).
func TestReplayToolsRefuseWhileRunning(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "replay")
	cf := writeConfig(t, dir, store)
	legacy := filepath.Join(dir, "old")
	os.WriteFile(legacy, make([]byte, 24*1000), 0o600)

	held, err := replay.Open(store, replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tool := range [][]string{{"--import-archive", legacy}, {"--prune-replay"}, {"--repair-replay"}} {
		var out, errb bytes.Buffer
		code := run(append([]string{"-D", "-f", cf}, tool...), &out, &errb)
		want := fmt.Sprintf("locked by process %d", os.Getpid())
		if code != 1 || !strings.Contains(errb.String(), want) {
			t.Errorf("doormand %v beside a running store: exit %d, %q; want exit 1 naming %q", tool, code, errb.String(), want)
		}
	}
	held.Close()

	// With the store free, they run.
	for _, c := range []struct {
		tool []string
		out  string
	}{
		{[]string{"--import-archive", legacy}, "imported 0 digests"},
		{[]string{"--prune-replay"}, "pruned 0 digests"},
		{[]string{"--repair-replay"}, "0 records, nothing to repair"},
	} {
		var out, errb bytes.Buffer
		if code := run(append([]string{"-D", "-f", cf}, c.tool...), &out, &errb); code != 0 || !strings.Contains(out.String(), c.out) {
			t.Errorf("doormand %v: exit %d, %q %q; want %q", c.tool, code, out.String(), errb.String(), c.out)
		}
	}
}

// TestReplayToolsCheckDirectory: the offline tools refuse a store in a
// directory others can write (audit item 7, CLASSIC-5.8), even with -D.
func TestReplayToolsCheckDirectory(t *testing.T) {
	dir := t.TempDir()
	shared := filepath.Join(dir, "shared")
	os.Mkdir(shared, 0o755)
	os.Chmod(shared, os.ModeSticky|0o777)
	cf := writeConfig(t, dir, filepath.Join(shared, "replay"))
	var out, errb bytes.Buffer
	code := run([]string{"-D", "-f", cf, "--repair-replay"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "has mode 1777") {
		t.Fatalf("exit %d, %q; want the shared directory refused", code, errb.String())
	}
	if _, err := os.Lstat(filepath.Join(shared, "replay")); !os.IsNotExist(err) {
		t.Fatalf("store created in the shared directory: %v", err)
	}
}

func writeConfig(t *testing.T, dir, store string) string {
	t.Helper()
	guests := filepath.Join(dir, "guests")
	os.WriteFile(guests, []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	cf := filepath.Join(dir, "doormand.cf")
	os.WriteFile(cf, []byte("interface eth0\nguestlist "+guests+"\nhash-archive "+store+"\n"), 0o600)
	return cf
}

// TestRepairStamps: --repair-replay also repairs the stamp store of modern
// knocks beside the replay store, which doormand refuses to start with
// when damaged (MODERN-12.17/2), and keeps every record that checks.
func TestRepairStamps(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "replay")
	cf := writeConfig(t, dir, store)
	st, err := replay.OpenStamps(store+".stamps", replay.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for g := range byte(3) {
		if _, err := st.Advance([32]byte{g + 1}, 100); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	f, err := os.OpenFile(store+".stamps", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{0xFF}, 64+64+5) // the second record's guest key
	f.Close()
	if _, err := replay.OpenStamps(store+".stamps", replay.Options{}); err == nil {
		t.Fatal("a damaged stamp store opens: the test shows nothing")
	}

	var out, errb bytes.Buffer
	if code := run([]string{"-D", "-f", cf, "--repair-replay"}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "repaired "+store+".stamps: kept 2 records") {
		t.Fatalf("exit %d, %q %q", code, out.String(), errb.String())
	}
	st, err = replay.OpenStamps(store+".stamps", replay.Options{})
	if err != nil {
		t.Fatalf("after the repair: %v", err)
	}
	defer st.Close()
	if last, ok := st.Last([32]byte{1}); !ok || last != 100 || st.Len() != 2 {
		t.Fatalf("after the repair: guest 1 at %d %v, %d guests", last, ok, st.Len())
	}
}
