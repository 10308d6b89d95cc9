package service

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/protocol"
)

// The doorman's and the modern guest's keys in these tests.
var (
	serverKey   = testKey(1)
	bobKey      = testKey(2)
	strangerKey = testKey(3)
)

func testKey(seed byte) protocol.PrivateKey {
	k, err := protocol.NewPrivateKey(bytes.NewReader(bytes.Repeat([]byte{seed}, protocol.KeySize)))
	if err != nil {
		panic(err)
	}
	return k
}

// modernSite writes a doormand.cf with extra lines and a guest list with
// alice (classic) and, if modern, bob (modern); it returns the paths.
func modernSite(t *testing.T, extra string, modern bool) (cf, gl, key string) {
	t.Helper()
	dir := t.TempDir()
	cf, gl, key = filepath.Join(dir, "doormand.cf"), filepath.Join(dir, "guests"), filepath.Join(dir, "doormand.key")
	os.WriteFile(cf, []byte("interface eth0\nguestlist "+gl+"\nhash-archive "+filepath.Join(dir, "replay")+
		"\nprivate-key "+key+"\n"+extra), 0o600)
	guests := "alice s3cretKnock 22 198.18.0.0/24\n"
	if modern {
		guests += "bob pubkey." + bobKey.Public().String() + " 22 198.18.0.0/24\n"
	}
	os.WriteFile(gl, []byte(guests), 0o600)
	return cf, gl, key
}

// TestServiceModernNeedsKey: with a modern guest and no usable private key
// doormand refuses to start, naming the file and `doormand keygen`
// (MODERN-12.21); without a modern guest it starts without a key.
func TestServiceModernNeedsKey(t *testing.T) {
	cf, _, key := modernSite(t, "", true)
	_, _, err := Load(Options{ConfigPath: cf, Debug: true, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), key) || !strings.Contains(err.Error(), "doormand keygen") {
		t.Fatalf("start with a modern guest and no key: %v", err)
	}
	os.WriteFile(key, []byte("SECRETCONTENT\n"), 0o600)
	_, _, err = Load(Options{ConfigPath: cf, Debug: true, Stderr: &bytes.Buffer{}})
	if err == nil || !strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "SECRETCONTENT") {
		t.Fatalf("start with a broken key: %v (must name the file, never show its content)", err)
	}

	cf, _, _ = modernSite(t, "", false)
	svc, guests, err := Load(Options{ConfigPath: cf, Debug: true, Stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatalf("classic-only site without a key: %v", err)
	}
	defer svc.Close()
	if svc.opener != nil || guests.Modern() != 0 {
		t.Fatal("a key from nowhere")
	}
}

// TestServiceModernSettings: the modern keywords reach the engine, and a
// reload applies them, the key and the guest index at once (MODERN-12.21);
// a reload that brings a modern guest without a key is refused whole
// (MODERN-12.21/2).
func TestServiceModernSettings(t *testing.T) {
	cf, gl, key := modernSite(t, "classic off\nmodern-window 30\nmodern-rate 7\nmodern-burst 9\n", true)
	if err := config.WritePrivateKey(key, &serverKey); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	svc, guests, err := Load(Options{ConfigPath: cf, Debug: true, Stderr: &logs})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	st := svc.settings()
	if !st.ClassicOff || st.ModernWindow != 30*time.Second || st.ModernRate != 7 || st.ModernBurst != 9 {
		t.Fatalf("settings %+v", st)
	}
	if svc.opener == nil || svc.opener.PublicKey() != serverKey.Public() || guests.Modern() != 1 {
		t.Fatal("the key or the modern guest was not loaded")
	}
	eng := daemon.New(daemon.Options{Settings: st, Guests: guests, Opener: svc.opener, Firewall: firewall.NewFake()})

	// A new key, classic on, and the guest gone: all at once.
	os.Remove(key)
	if err := config.WritePrivateKey(key, &strangerKey); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(cf, []byte(strings.Replace(mustRead(t, cf), "classic off\n", "", 1)), 0o600)
	os.WriteFile(gl, []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	svc.reload(eng)
	if eng.Opener().PublicKey() != strangerKey.Public() || eng.Settings().ClassicOff || eng.Guests().Modern() != 0 {
		t.Fatalf("reload did not apply the key, classic on and the guest list; log:\n%s", logs.String())
	}

	// A modern guest again, but the key is gone: nothing changes.
	os.Remove(key)
	os.WriteFile(gl, []byte("bob pubkey."+bobKey.Public().String()+" 22 198.18.0.0/24\n"), 0o600)
	svc.reload(eng)
	if eng.Opener() == nil || eng.Guests().Len() != 1 || eng.Guests().Modern() != 0 {
		t.Fatalf("a reload without the key changed what is in force; log:\n%s", logs.String())
	}
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
