package daemon

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon/firewall"
)

// TestServiceReload: SIGHUP's reload swaps in a new guest list at once; a
// broken one is reported and the old list stays in force (CLASSIC-9.4/2),
// and open doors are not touched (CLASSIC-6.11).
func TestServiceReload(t *testing.T) {
	dir := t.TempDir()
	cf := filepath.Join(dir, "doormand.cf")
	gl := filepath.Join(dir, "guests")
	os.WriteFile(cf, []byte("interface eth0\nguestlist "+gl+"\nhash-archive "+filepath.Join(dir, "replay")+"\n"), 0o600)
	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	var logs bytes.Buffer
	svc, guests, err := LoadService(ServiceOptions{ConfigPath: cf, Debug: true, Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	eng := New(Options{Settings: svc.settings(), Guests: guests, Firewall: firewall.NewFake()})

	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\nbob b0bsecret 22 198.18.0.0/24\n"), 0o600)
	svc.reload(eng)
	if eng.guests.Load().byName["bob"] == nil {
		t.Fatalf("bob not in force after reload; log:\n%s", logs.String())
	}

	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\ncarol nosuchaddress\n"), 0o600)
	svc.reload(eng)
	g := eng.guests.Load()
	if g.byName["bob"] == nil || g.byName["carol"] != nil {
		t.Fatal("a broken guest list replaced the one in force")
	}
	if !strings.Contains(logs.String(), "reload failed: guest list kept as it was") || !strings.Contains(logs.String(), "guests:2") {
		t.Fatalf("reload error not reported with file and line; log:\n%s", logs.String())
	}
}

// TestServiceMissingConfig: a missing configuration file is a clear error
// naming the path, and nothing starts.
func TestServiceMissingConfig(t *testing.T) {
	_, _, err := LoadService(ServiceOptions{ConfigPath: "/nonexistent/doormand.cf", Debug: true})
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
