package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
