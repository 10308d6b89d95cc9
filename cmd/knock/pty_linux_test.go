package main

import (
	"bytes"
	"fmt"
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
// terminal (CLASSIC-11.4), and it is the secret the knock is signed with;
// also when --secret-stdin names the terminal as the source.
func TestSecretPromptNoEcho(t *testing.T) {
	for _, extra := range [][]string{nil, {"--secret-stdin"}} {
		t.Run(fmt.Sprint(extra), func(t *testing.T) { promptNoEcho(t, extra) })
	}
}

func promptNoEcho(t *testing.T, extra []string) {
	master, slave := openPTY(t)
	var stdout, stderr bytes.Buffer
	go func() {
		time.Sleep(200 * time.Millisecond) // let knock switch echo off first
		master.Write([]byte("hunter2secret\n"))
	}()
	cfg, body := t.TempDir()+"/knockcf", "# no secret here\n"
	if len(extra) > 0 {
		body = "secret other\n" // --secret-stdin wins over it
	}
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--dry-run", "-f", cfg, "-g", "alice"}, extra...)
	code := run(append(args, "198.18.0.1", "2222"), slave, &stdout, &stderr)
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
