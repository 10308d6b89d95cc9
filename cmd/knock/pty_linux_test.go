package main

import (
	"bytes"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's master and slave.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		m.Close()
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// TestSecretPromptNoEcho: a secret typed at the prompt is not echoed to the
// terminal (CLASSIC-11.4), and it is the secret the knock is signed with.
func TestSecretPromptNoEcho(t *testing.T) {
	master, slave := openPTY(t)
	var stdout, stderr bytes.Buffer
	go func() {
		time.Sleep(200 * time.Millisecond) // let knock switch echo off first
		master.Write([]byte("hunter2secret\n"))
	}()
	cfg := t.TempDir() + "/knockcf"
	if err := os.WriteFile(cfg, []byte("# no secret here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code := run([]string{"--dry-run", "-f", cfg, "-g", "alice", "198.18.0.1", "2222"}, slave, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("knock exit %d: %s", code, stderr.String())
	}
	// Whatever the terminal displayed is readable on the master until the
	// slave side is closed.
	slave.Close()
	echoed, _ := io.ReadAll(master)
	if bytes.Contains(echoed, []byte("hunter2")) {
		t.Fatalf("the terminal echoed the secret: %q", echoed)
	}
	if !strings.Contains(stderr.String(), "Secret for group alice") {
		t.Fatalf("no prompt on stderr: %q", stderr.String())
	}
	var k protocol.Knock
	if err := protocol.ParseKnock([]byte(strings.SplitN(stdout.String(), "\n", 2)[0]), &k); err != nil {
		t.Fatal(err)
	}
	if !k.VerifyMAC([]byte("hunter2secret")) {
		t.Fatal("the knock is not signed with the secret typed at the prompt")
	}
}
