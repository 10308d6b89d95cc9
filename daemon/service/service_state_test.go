package service

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPidFileZombieAndKernelThread: a stale pid file whose pid now names a
// zombie or a kernel thread does not block the start (audit finding 14).
func TestPidFileZombieAndKernelThread(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doorman.pid")
	log := slog.New(slog.DiscardHandler)

	zombie := exec.Command("sh", "-c", "exit 0")
	if err := zombie.Start(); err != nil {
		t.Fatal(err)
	}
	defer zombie.Wait() // reaped at the end: a zombie until then
	deadline := time.Now().Add(5 * time.Second)
	for {
		stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", zombie.Process.Pid))
		if strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child never became a zombie: %s", stat)
		}
		time.Sleep(5 * time.Millisecond)
	}
	pids := []int{zombie.Process.Pid}
	// kthreadd is pid 2 where the test sees the host's pid namespace.
	if stat, err := os.ReadFile("/proc/2/stat"); err == nil {
		if f := strings.Fields(string(stat)[strings.LastIndexByte(string(stat), ')')+1:]); len(f) > 6 {
			if flags, _ := strconv.ParseUint(f[6], 10, 64); flags&pfKThread != 0 {
				pids = append(pids, 2)
			}
		}
	}
	for _, pid := range pids {
		os.WriteFile(path, []byte(strconv.Itoa(pid)+"\n"), 0o644)
		release, err := TakePidFile(path, log)
		if err != nil {
			t.Fatalf("pid file naming %d refused: %v", pid, err)
		}
		release()
	}
}

// TestStateFilesRefuseSymlinks: the pid file, the log file and the events
// file are never written (or read) through a symbolic link an attacker may
// have planted (audit finding 7): the daemon refuses to start, naming the
// link, and the target is untouched.
func TestStateFilesRefuseSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "precious")
	if err := os.WriteFile(target, []byte("do not touch\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := func(name string) string {
		p := filepath.Join(dir, name)
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	log := slog.New(slog.DiscardHandler)
	if _, err := TakePidFile(link("pid"), log); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("pid file through a link: %v", err)
	}
	if _, err := openEvents(link("events"), nil); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("events file through a link: %v", err)
	}
	cf := filepath.Join(dir, "doormand.cf")
	os.WriteFile(cf, []byte("interface eth0\nguestlist "+filepath.Join(dir, "guests")+"\nlogfile "+link("log")+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "guests"), []byte("alice s3cretKnock 22 198.18.0.0/24\n"), 0o600)
	var stderr bytes.Buffer
	if _, _, err := Load(Options{ConfigPath: cf, Stderr: &stderr}); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		// Without -D the ownership checks run first; the file is the
		// test's own, so only the link can fail.
		t.Errorf("log file through a link: %v", err)
	}
	if b, _ := os.ReadFile(target); string(b) != "do not touch\n" {
		t.Fatalf("the link's target was written: %q", b)
	}
}
