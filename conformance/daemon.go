//go:build linux

package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// daemonProc is one run of the implementation under test.
type daemonProc struct {
	cmd  *exec.Cmd
	log  *lockedBuffer
	file *os.File
	done chan struct{}
	err  error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
	f  *os.File
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		_, _ = l.f.Write(p)
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nsRun runs argv in namespace ns and returns its combined output.
func nsRun(ctx context.Context, ns string, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// runCommands renders and runs a list of commands in the server namespace.
func (e *Env) runCommands(what string, cmds [][]string) error {
	for i, c := range cmds {
		argv, err := e.Impl.renderArgv(fmt.Sprintf("%s[%d]", what, i), c, e.model)
		if err != nil {
			return err
		}
		if _, err := nsRun(e.ctx, e.Topo.Server.NS, argv); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	return nil
}

// StartDaemon starts the implementation in the server namespace. With
// fresh, the work directory's state is kept but the admin firewall is reset
// and set up again; without, the server namespace is left as it is (a
// restart after a crash).
func (e *Env) StartDaemon(fresh bool) error {
	if e.daemon != nil {
		return errors.New("daemon already running")
	}
	a := e.Impl
	if fresh {
		if err := e.runCommands("reset", a.Reset); err != nil {
			return err
		}
		if err := a.writeFiles(e.model.WorkDir, e.model); err != nil {
			return err
		}
		if err := e.runCommands("preamble", a.Preamble); err != nil {
			return err
		}
	}
	argv, err := a.renderArgv("start", a.Start, e.model)
	if err != nil {
		return err
	}
	e.starts++
	f, err := os.Create(filepath.Join(e.ArtifactDir, fmt.Sprintf("daemon-%d.log", e.starts)))
	if err != nil {
		return err
	}
	lb := &lockedBuffer{f: f}
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.Topo.Server.NS}, argv...)...)
	cmd.Dir = e.model.WorkDir
	cmd.Stdout, cmd.Stderr = lb, lb
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", strings.Join(argv, " "), err)
	}
	d := &daemonProc{cmd: cmd, log: lb, file: f, done: make(chan struct{})}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	e.daemon = d
	return e.waitReady(d)
}

func (e *Env) waitReady(d *daemonProc) error {
	a := e.Impl
	timeout := a.ReadyTimeout.Duration
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var re *regexp.Regexp
	if a.ReadyLog != "" {
		var err error
		if re, err = regexp.Compile(a.ReadyLog); err != nil {
			return fmt.Errorf("adapter %s: ready_log: %w", a.Name, err)
		}
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for re != nil && !re.MatchString(d.log.String()) {
		select {
		case <-d.done:
			e.daemon = nil
			return fmt.Errorf("daemon exited before it was ready (%v); log:\n%s", d.err, tail(d.log.String(), 2000))
		case <-deadline:
			return fmt.Errorf("daemon not ready after %v (no log line matching %q); log:\n%s", timeout, a.ReadyLog, tail(d.log.String(), 2000))
		case <-tick.C:
		}
	}
	if a.ReadyDelay.Duration > 0 {
		time.Sleep(a.ReadyDelay.Duration)
	}
	select {
	case <-d.done:
		e.daemon = nil
		return fmt.Errorf("daemon exited at start (%v); log:\n%s", d.err, tail(d.log.String(), 2000))
	default:
	}
	return nil
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// StopDaemon stops the daemon with the adapter's stop signal and waits for
// it (SIGKILL after 10 s).
func (e *Env) StopDaemon() error {
	sig, _ := parseSignal(e.Impl.StopSignal)
	return e.signalAndWait(sig)
}

// KillDaemon kills the daemon with SIGKILL (a crash).
func (e *Env) KillDaemon() error { return e.signalAndWait(syscall.SIGKILL) }

func (e *Env) signalAndWait(sig syscall.Signal) error {
	d := e.daemon
	if d == nil {
		return nil
	}
	e.daemon = nil
	defer d.file.Close()
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
		<-d.done
		return fmt.Errorf("daemon did not exit within 10 s of %v", sig)
	}
	return nil
}

// ReloadDaemon writes the adapter's files from m (which stays the model in
// force for the case) and sends the reload signal; it returns when the
// daemon logged ReloadLog (counting from before the signal) or after
// ReloadDelay (default 500 ms). ErrUnsupported without a reload signal.
func (e *Env) ReloadDaemon(m Model) error {
	a := e.Impl
	if a.ReloadSignal == "" {
		return fmt.Errorf("%w: the adapter names no reload_signal", ErrUnsupported)
	}
	d := e.daemon
	if d == nil {
		return errors.New("reload: daemon not running")
	}
	sig, err := parseSignal(a.ReloadSignal)
	if err != nil {
		return err
	}
	if err := a.writeFiles(m.WorkDir, m); err != nil {
		return err
	}
	e.model = m
	before := len(d.log.String())
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	if a.ReloadLog != "" {
		re := regexp.MustCompile(a.ReloadLog)
		deadline := time.Now().Add(5 * time.Second)
		for !re.MatchString(d.log.String()[before:]) {
			if time.Now().After(deadline) {
				return fmt.Errorf("no reload log line matching %q within 5 s", a.ReloadLog)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	delay := a.ReloadDelay.Duration
	if delay == 0 {
		delay = 500 * time.Millisecond
	}
	time.Sleep(delay)
	return nil
}

// DaemonAlive reports whether the daemon is still running.
func (e *Env) DaemonAlive() bool {
	if e.daemon == nil {
		return false
	}
	select {
	case <-e.daemon.done:
		return false
	default:
		return true
	}
}

// DaemonLog returns what the current daemon run has logged.
func (e *Env) DaemonLog() string {
	if e.daemon == nil {
		return ""
	}
	return e.daemon.log.String()
}
