package replay

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/doorman-project/doorman/protocol"
)

// TestIntegrationFullDisk fills a small tmpfs under the store, the audit's
// item 4: the knock that meets ENOSPC is refused, no torn record stays, and
// once space returns the store goes on and reopens with every digest it
// admitted (CLASSIC-5.5/3). The tmpfs is mounted by a re-executed copy of
// this test in a mount namespace of its own, so it is gone when the child
// exits, whatever happens.
func TestIntegrationFullDisk(t *testing.T) {
	if dir := os.Getenv("DOORMAN_TEST_FULLDISK_DIR"); dir != "" {
		fullDiskChild(t, dir)
		return
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs in a private mount namespace (CI runs as root)")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntegrationFullDisk$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), "DOORMAN_TEST_FULLDISK_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS} // Go also makes / private
	out, err := cmd.CombinedOutput()
	if errors.Is(err, syscall.EPERM) {
		t.Skipf("cannot create a mount namespace here: %v", err)
	}
	t.Logf("child:\n%s", out)
	if err != nil {
		t.Fatalf("child: %v", err)
	}
}

func fullDiskChild(t *testing.T, dir string) {
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=32k,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	filler := filepath.Join(dir, "filler")
	if err := os.WriteFile(filler, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "replay")
	s, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var admitted [][protocol.MACSize]byte
	full := false
	for i := 0; i < 4096 && !full; i++ {
		m := macN(i)
		_, err := s.Admit(m, fpA)
		switch {
		case err == nil:
			admitted = append(admitted, m)
		case errors.Is(err, syscall.ENOSPC):
			full = true
			if _, ok := s.Seen(m); ok {
				t.Fatalf("digest refused for ENOSPC is remembered as accepted")
			}
		default:
			t.Fatalf("admit %d: %v", i, err)
		}
	}
	if !full {
		t.Fatal("the 32 KiB tmpfs never filled up")
	}
	t.Logf("disk full after %d records", len(admitted))
	if err := os.Remove(filler); err != nil { // space returns
		t.Fatal(err)
	}
	for i := 10_000; i < 10_010; i++ {
		m := macN(i)
		if _, err := s.Admit(m, fpA); err != nil {
			t.Fatalf("admit after space returned: %v", err)
		}
		admitted = append(admitted, m)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path, Options{})
	if err != nil {
		t.Fatalf("restart after a full disk: %v", err)
	}
	defer s.Close()
	for _, m := range admitted {
		wantReplay(t, s, m)
	}
}
