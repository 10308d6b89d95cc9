//go:build linux

package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	cmd    *exec.Cmd
	log    *lockedBuffer // stdout and stderr, in arrival order
	stdout *lockedBuffer // stdout alone (events "-")
	file   *os.File
	done   chan struct{}
	err    error
	// eventsFrom is the size of the events file when the run started:
	// events before it belong to earlier runs.
	eventsFrom int64
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
	if err := checkProgram(argv); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// checkProgram reports, as a setup error, an argv whose program cannot be
// executed. `ip netns exec` would otherwise fail with a message of its own
// that looks like the implementation's failure.
func checkProgram(argv []string) error {
	if len(argv) == 0 || argv[0] == "" {
		return setupErr(errors.New("empty command"))
	}
	p := argv[0]
	if !strings.Contains(p, "/") {
		if _, err := exec.LookPath(p); err != nil {
			return setupErr(fmt.Errorf("command %q: %w", p, err))
		}
		return nil
	}
	if !filepath.IsAbs(p) {
		return setupErr(fmt.Errorf("command %q: a program path must be absolute (commands run in the work directory); use {{bin %q}}", p, filepath.Base(p)))
	}
	st, err := os.Stat(p)
	switch {
	case err != nil:
		return setupErr(fmt.Errorf("command %q: %w", p, err))
	case st.IsDir() || st.Mode()&0o111 == 0:
		return setupErr(fmt.Errorf("command %q: not an executable file", p))
	}
	return nil
}

// runCommands renders and runs a list of commands in the server namespace.
// Their failures are setup errors: they are the adapter's, not the
// implementation's.
func (e *Env) runCommands(what string, cmds [][]string) error {
	for i, c := range cmds {
		argv, err := e.Impl.renderArgv(fmt.Sprintf("%s[%d]", what, i), c, e.model)
		if err != nil {
			return err
		}
		if _, err := nsRun(e.ctx, e.Topo.Server.NS, argv); err != nil {
			return setupErr(fmt.Errorf("%s: %w", what, err))
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
		return setupErr(errors.New("daemon already running"))
	}
	a := e.Impl
	if fresh {
		if err := e.runCommands("reset", a.Reset); err != nil {
			return err
		}
		if err := a.writeFiles(e.model.WorkDir, e.model); err != nil {
			return err
		}
		if err := writeKeyFile(e.model); err != nil {
			return err
		}
		if !e.openHost {
			if err := e.runCommands("preamble", a.Preamble); err != nil {
				return err
			}
		}
		if e.prepare != nil {
			prep := e.prepare
			e.prepare = nil // once per case
			if err := prep(e); err != nil {
				return setupErr(fmt.Errorf("prepare: %w", err))
			}
		}
	}
	argv, err := a.renderArgv("start", a.Start, e.model)
	if err != nil {
		return err
	}
	if err := checkProgram(argv); err != nil {
		return err
	}
	eventsPath, err := e.eventsPath()
	if err != nil {
		return err
	}
	var eventsFrom int64
	if eventsPath != "" {
		if st, err := os.Stat(eventsPath); err == nil {
			eventsFrom = st.Size()
		}
	}
	e.starts++
	f, err := os.Create(filepath.Join(e.ArtifactDir, fmt.Sprintf("daemon-%d.log", e.starts)))
	if err != nil {
		return setupErr(err)
	}
	lb := &lockedBuffer{f: f}
	out := &lockedBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", e.Topo.Server.NS}, argv...)...)
	cmd.Dir = e.model.WorkDir
	cmd.Stdout, cmd.Stderr = io.MultiWriter(lb, out), lb
	// A process group of its own, so that a crash (SIGKILL) takes every
	// process the start command made with it, also behind a wrapper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return setupErr(fmt.Errorf("start %s: %w", strings.Join(argv, " "), err))
	}
	d := &daemonProc{cmd: cmd, log: lb, stdout: out, file: f, done: make(chan struct{}), eventsFrom: eventsFrom}
	go func() { d.err = cmd.Wait(); close(d.done) }()
	e.daemon = d
	return e.waitReady(d)
}

// eventsPath renders the adapter's events key: "" without one, "-" for
// standard output, else a file path.
func (e *Env) eventsPath() (string, error) {
	ev := e.Impl.Events
	if ev == "" || ev == "-" {
		return ev, nil
	}
	p, err := e.Impl.render("events", ev, e.model)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(e.model.WorkDir, p)
	}
	return p, nil
}

// readEvents returns the events the current run has written so far.
func (e *Env) readEvents(d *daemonProc) ([]Event, error) {
	p, err := e.eventsPath()
	if err != nil {
		return nil, err
	}
	if p == "-" {
		return parseEvents([]byte(d.stdout.String())), nil
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(d.eventsFrom, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return parseEvents(b), nil
}

// writeKeyFile writes the doorman's private key to m.PrivateKeyFile in
// the key file form of MODERN-12.2, mode 0600; with no PrivateKey (a case
// of a missing key) it writes nothing.
func writeKeyFile(m Model) error {
	if m.PrivateKey == "" || m.PrivateKeyFile == "" {
		return nil
	}
	body := "# the doorman's private key, written by doorman-conformance\n" + m.PrivateKey + "\n"
	if err := os.WriteFile(m.PrivateKeyFile, []byte(body), 0o600); err != nil {
		return setupErr(err)
	}
	return setupErr(os.Chmod(m.PrivateKeyFile, 0o600))
}

// errExited says that the daemon exited while the suite waited for it.
var errExited = errors.New("daemon exited")

// waitFor polls until ok says so, the daemon exits, or timeout passes;
// what describes the awaited thing in errors.
func (e *Env) waitFor(d *daemonProc, timeout time.Duration, what string, ok func() (bool, error)) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		done, err := ok()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-d.done:
			return fmt.Errorf("%w before %s (%v); log:\n%s", errExited, what, d.err, tail(d.log.String(), 2000))
		case <-deadline:
			return fmt.Errorf("no %s within %v; log:\n%s", what, timeout, tail(d.log.String(), 2000))
		case <-tick.C:
		case <-e.ctx.Done():
			return e.ctx.Err()
		}
	}
}

func (e *Env) waitReady(d *daemonProc) error {
	a := e.Impl
	timeout := a.ReadyTimeout.Duration
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var err error
	switch {
	case a.Events != "":
		err = e.waitFor(d, timeout, fmt.Sprintf("%q event", a.ReadyEvent), func() (bool, error) {
			evs, err := e.readEvents(d)
			return findEvent(evs, a.ReadyEvent, 0) >= 0, err
		})
	case a.ReadyLog != "":
		re := regexp.MustCompile(a.ReadyLog) // validated at load
		err = e.waitFor(d, timeout, fmt.Sprintf("log line matching %q", a.ReadyLog), func() (bool, error) {
			return re.MatchString(d.log.String()), nil
		})
	}
	if err != nil {
		e.stopAfterFailedStart(d)
		return fmt.Errorf("daemon not ready: %w", err)
	}
	if a.ReadyDelay.Duration > 0 {
		time.Sleep(a.ReadyDelay.Duration)
	}
	select {
	case <-d.done:
		e.daemon = nil
		return fmt.Errorf("%w at start (%v); log:\n%s", errExited, d.err, tail(d.log.String(), 2000))
	default:
	}
	return nil
}

// stopAfterFailedStart kills a run that never became ready.
func (e *Env) stopAfterFailedStart(d *daemonProc) {
	e.daemon = nil
	_ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL)
	<-d.done
	d.file.Close()
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

// KillDaemon kills the daemon's process group with SIGKILL (a crash).
func (e *Env) KillDaemon() error { return e.signalAndWait(syscall.SIGKILL) }

// groupGrace is how long processes the daemon left in its process group
// may outlive it before they are killed.
const groupGrace = 2 * time.Second

func (e *Env) signalAndWait(sig syscall.Signal) error {
	d := e.daemon
	if d == nil {
		return nil
	}
	e.daemon = nil
	defer d.file.Close()
	pid := d.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = d.cmd.Process.Signal(sig)
	}
	var err error
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-d.done
		err = fmt.Errorf("daemon did not exit within 10 s of %v", sig)
	}
	// What the daemon started and left behind must not run into the next
	// case.
	for end := time.Now().Add(groupGrace); syscall.Kill(-pid, 0) == nil; {
		if time.Now().After(end) {
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			if err == nil {
				err = fmt.Errorf("processes of the daemon's process group outlived it by %v and were killed", groupGrace)
			}
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// ReloadDaemon writes the adapter's files from m (which stays the model in
// force for the case) and sends the reload signal; it returns when the
// daemon reported the reload (a ReloadEvent, or a log line matching
// ReloadLog, counting from before the signal) or after ReloadDelay
// (default 500 ms). ErrUnsupported without a reload signal.
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
		return setupErr(err)
	}
	if err := a.writeFiles(m.WorkDir, m); err != nil {
		return err
	}
	if err := writeKeyFile(m); err != nil {
		return err
	}
	e.model = m
	logBefore := len(d.log.String())
	evBefore := 0
	if a.Events != "" {
		evs, err := e.readEvents(d)
		if err != nil {
			return setupErr(err)
		}
		evBefore = len(evs)
	}
	if err := d.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	const reloadTimeout = 5 * time.Second
	switch {
	case a.Events != "":
		return e.waitFor(d, reloadTimeout, fmt.Sprintf("%q event after the reload signal", a.ReloadEvent), func() (bool, error) {
			evs, err := e.readEvents(d)
			return findEvent(evs, a.ReloadEvent, evBefore) >= 0, err
		})
	case a.ReloadLog != "":
		re := regexp.MustCompile(a.ReloadLog)
		return e.waitFor(d, reloadTimeout, fmt.Sprintf("log line matching %q after the reload signal", a.ReloadLog), func() (bool, error) {
			return re.MatchString(d.log.String()[logBefore:]), nil
		})
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
