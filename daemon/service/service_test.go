package service

import (
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
)

// TestServiceReload: SIGHUP's reload swaps in a new guest list at once; a
// broken one is reported, with file and line, and the old list stays in
// force (CLASSIC-9.4/2). A restart-only setting that changed stays as it
// was; a reloadable one changes.
func TestServiceReload(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "doormand.cf")
	gl := filepath.Join(dir, "guests")
	base := "interface eth0\nguestlist " + gl + "\nhash-archive " + filepath.Join(dir, "replay") + "\n"
	os.WriteFile(cf, []byte(base), 0o600)
	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	svc, guests, err := Load(Options{ConfigPath: cf, Debug: true, Stderr: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	var reloads []daemon.Event
	svc.onEvent = func(ev daemon.Event) {
		if ev.Kind == daemon.EventReload {
			reloads = append(reloads, ev)
		}
	}
	eng := daemon.New(daemon.Options{Settings: svc.settings(), Guests: guests, Firewall: firewall.NewFake()})
	inForce := func(group, secret string) bool {
		return eng.Guests().Fingerprints()(replay.GuestFingerprint(group, []byte(secret)))
	}

	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\nbob b0bsecret 22 198.18.0.0/24\n"), 0o600)
	os.WriteFile(cf, []byte(base+"waitfor 3\ninterface eth1\n"), 0o600)
	svc.reload(eng)
	if len(reloads) != 1 || reloads[0].Err != "" {
		t.Fatalf("reload events %+v, want one that succeeded", reloads)
	}
	if !inForce("bob", "b0bsecret") || !inForce("alice", "s3cretKnock") {
		t.Fatal("bob not in force after reload")
	}
	if got := svc.Config(); got.WaitFor != 3*time.Second || got.Interface != "eth0" {
		t.Errorf("after reload waitfor %v (want 3s, reloadable), interface %s (want eth0 until a restart)", got.WaitFor, got.Interface)
	}

	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\ncarol nosuchaddress\n"), 0o600)
	svc.reload(eng)
	if !inForce("bob", "b0bsecret") || inForce("carol", "nosuchaddress") {
		t.Fatal("a broken guest list replaced the one in force")
	}
	if len(reloads) != 2 || !strings.Contains(reloads[1].Err, gl+":2") {
		t.Fatalf("reload of a broken list: events %+v, want an error naming %s:2", reloads, gl)
	}
}

// TestServiceMissingConfig: a missing configuration file is a clear error
// naming the path, and nothing starts.
func TestServiceMissingConfig(t *testing.T) {
	_, _, err := Load(Options{ConfigPath: "/nonexistent/doormand.cf", Debug: true})
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/doormand.cf") {
		t.Fatalf("LoadService of a missing file: %v", err)
	}
}

// TestPidFile: a pid file naming a live doormand is refused; one naming a
// dead process, garbage, or a live process of another program (pid reuse
// after a reboot) is replaced.
func TestPidFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doorman.pid")
	log := slog.New(slog.DiscardHandler)
	other := exec.Command("sleep", "30") // a live process of another program
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	for _, stale := range []string{"999999999\n", "garbage", strconv.Itoa(other.Process.Pid) + "\n"} {
		os.WriteFile(path, []byte(stale), 0o644)
		release, err := TakePidFile(path, log)
		if err != nil {
			t.Fatalf("stale pid file %q refused: %v", stale, err)
		}
		if b, _ := os.ReadFile(path); strings.TrimSpace(string(b)) != strconv.Itoa(os.Getpid()) {
			t.Fatalf("pid file holds %q", b)
		}
		release()
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatal("release left the pid file")
		}
	}
	// A live process running this very program (the test binary itself,
	// under another pid): a copy of the test binary that sleeps.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	sleeper := exec.Command(self, "-test.run=^$", "-test.timeout=30s")
	sleeper.Env = append(os.Environ(), "DOORMAN_TEST_SLEEP=1")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer sleeper.Process.Kill()
	os.WriteFile(path, []byte(strconv.Itoa(sleeper.Process.Pid)+"\n"), 0o644)
	if _, err := TakePidFile(path, log); !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("pid file of a live doormand: %v, want ErrAlreadyRunning", err)
	}
}

func TestMain(m *testing.M) {
	if os.Getenv("DOORMAN_TEST_SLEEP") != "" {
		time.Sleep(20 * time.Second)
		os.Exit(0)
	}
	os.Exit(m.Run())
}
