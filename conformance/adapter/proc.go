//go:build linux

package adapter

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

// ErrNoReload is returned by Proc.Reload for an adapter without a
// reload_signal.
var ErrNoReload = errors.New("the adapter names no reload_signal")

// ErrExited says that the daemon exited while the suite waited for it.
var ErrExited = errors.New("daemon exited")

// Proc is one run of a daemon adapter's start command in a network
// namespace.
type Proc struct {
	a      *Adapter
	ctx    context.Context
	cmd    *exec.Cmd
	log    *lockedBuffer // stdout and stderr, in arrival order
	stdout *lockedBuffer // stdout alone (events "-")
	file   *os.File
	done   chan struct{}
	err    error
	// eventsPath is the rendered events key: "", "-" or a file.
	eventsPath string
	// eventsFrom is the size of the events file when the run started:
	// events before it belong to earlier runs.
	eventsFrom int64

	mu      sync.Mutex
	stopped bool
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

// NSRun runs argv in the network namespace ns (`ip netns exec`) and
// returns its combined output.
func NSRun(ctx context.Context, ns string, argv []string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := CheckProgram(argv); err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns}, argv...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// CheckProgram reports, as a setup error, an argv whose program cannot be
// executed. `ip netns exec` would otherwise fail with a message of its own
// that looks like the implementation's failure.
func CheckProgram(argv []string) error {
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

// RunCommands renders cmds (the adapter's reset or preamble, named what in
// errors) from m and runs them in ns. Their failures are setup errors:
// they are the adapter's, not the implementation's.
func (a *Adapter) RunCommands(ctx context.Context, ns, what string, cmds [][]string, m Model) error {
	for i, c := range cmds {
		argv, err := a.RenderArgv(fmt.Sprintf("%s[%d]", what, i), c, m)
		if err != nil {
			return err
		}
		if _, err := NSRun(ctx, ns, argv); err != nil {
			return setupErr(fmt.Errorf("%s: %w", what, err))
		}
	}
	return nil
}

// EventsPath renders the adapter's events key from m: "" without one,
// "-" for standard output, else an absolute file path.
func (a *Adapter) EventsPath(m Model) (string, error) {
	ev := a.Events
	if ev == "" || ev == "-" {
		return ev, nil
	}
	p, err := a.Render("events", ev, m)
	if err != nil {
		return "", err
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(m.WorkDir, p)
	}
	return p, nil
}

// Launch runs the adapter's start command, rendered from m, in the network
// namespace ns with m.WorkDir as its directory, and returns once the
// daemon is ready (ready_event, ready_log, ready_delay). What it writes to
// stdout and stderr goes to logPath too. The adapter's files, reset and
// preamble are the caller's (WriteFiles, RunCommands). ctx bounds the
// waits (readiness, reload), not the daemon's life: stop it with Stop or
// Kill. A daemon that does not become ready is killed; its error holds
// the log's tail. Failures to run the command at all are setup errors.
func (a *Adapter) Launch(ctx context.Context, ns string, m Model, logPath string) (*Proc, error) {
	argv, err := a.RenderArgv("start", a.Start, m)
	if err != nil {
		return nil, err
	}
	if err := CheckProgram(argv); err != nil {
		return nil, err
	}
	eventsPath, err := a.EventsPath(m)
	if err != nil {
		return nil, err
	}
	var eventsFrom int64
	if eventsPath != "" && eventsPath != "-" {
		if st, err := os.Stat(eventsPath); err == nil {
			eventsFrom = st.Size()
		}
	}
	f, err := os.Create(logPath)
	if err != nil {
		return nil, setupErr(err)
	}
	lb := &lockedBuffer{f: f}
	out := &lockedBuffer{}
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Dir = m.WorkDir
	cmd.Stdout, cmd.Stderr = io.MultiWriter(lb, out), lb
	// A process group of its own, so that a crash (SIGKILL) takes every
	// process the start command made with it, also behind a wrapper.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, setupErr(fmt.Errorf("start %s: %w", strings.Join(argv, " "), err))
	}
	p := &Proc{a: a, ctx: ctx, cmd: cmd, log: lb, stdout: out, file: f, done: make(chan struct{}),
		eventsPath: eventsPath, eventsFrom: eventsFrom}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(); err != nil {
		return nil, err
	}
	return p, nil
}

// Events returns the events this run has written so far (none without
// the adapter key events).
func (p *Proc) Events() ([]Event, error) {
	switch p.eventsPath {
	case "":
		return nil, nil
	case "-":
		return ParseEvents([]byte(p.stdout.String())), nil
	}
	f, err := os.Open(p.eventsPath)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(p.eventsFrom, io.SeekStart); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, err
	}
	return ParseEvents(b), nil
}

// waitFor polls until ok says so, the daemon exits, or timeout passes;
// what describes the awaited thing in errors.
func (p *Proc) waitFor(timeout time.Duration, what string, ok func() (bool, error)) error {
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
		case <-p.done:
			return fmt.Errorf("%w before %s (%v); log:\n%s", ErrExited, what, p.err, tail(p.log.String(), 2000))
		case <-deadline:
			return fmt.Errorf("no %s within %v; log:\n%s", what, timeout, tail(p.log.String(), 2000))
		case <-tick.C:
		case <-p.ctx.Done():
			return p.ctx.Err()
		}
	}
}

func (p *Proc) waitReady() error {
	a := p.a
	timeout := a.ReadyTimeout.Duration
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	var err error
	switch {
	case a.Events != "":
		err = p.waitFor(timeout, fmt.Sprintf("%q event", a.ReadyEvent), func() (bool, error) {
			evs, err := p.Events()
			return FindEvent(evs, a.ReadyEvent, 0) >= 0, err
		})
	case a.ReadyLog != "":
		re := regexp.MustCompile(a.ReadyLog) // validated at load
		err = p.waitFor(timeout, fmt.Sprintf("log line matching %q", a.ReadyLog), func() (bool, error) {
			return re.MatchString(p.log.String()), nil
		})
	}
	if err != nil {
		p.kill()
		return fmt.Errorf("daemon not ready: %w", err)
	}
	if a.ReadyDelay.Duration > 0 {
		time.Sleep(a.ReadyDelay.Duration)
	}
	select {
	case <-p.done:
		p.file.Close()
		return fmt.Errorf("%w at start (%v); log:\n%s", ErrExited, p.err, tail(p.log.String(), 2000))
	default:
	}
	return nil
}

// kill kills a run that never became ready.
func (p *Proc) kill() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
	p.file.Close()
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

// Stop stops the daemon with the adapter's stop signal and waits for it
// (SIGKILL after 10 s, which is an error). Stopping a stopped run does
// nothing.
func (p *Proc) Stop() error {
	sig, _ := ParseSignal(p.a.StopSignal)
	return p.signalAndWait(sig)
}

// Kill kills the daemon's process group with SIGKILL (a crash) and waits
// for it.
func (p *Proc) Kill() error { return p.signalAndWait(syscall.SIGKILL) }

// groupGrace is how long processes the daemon left in its process group
// may outlive it before they are killed.
const groupGrace = 2 * time.Second

func (p *Proc) signalAndWait(sig syscall.Signal) error {
	p.mu.Lock()
	stopped := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if stopped {
		return nil
	}
	defer p.file.Close()
	pid := p.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, sig)
	} else {
		_ = p.cmd.Process.Signal(sig)
	}
	var err error
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
		err = fmt.Errorf("daemon did not exit within 10 s of %v", sig)
	}
	// What the daemon started and left behind must not run into what
	// comes next.
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

// Reload writes the adapter's files from m and sends the reload signal;
// it returns when the daemon reported the reload (a reload_event, or a
// log line matching reload_log, counting from before the signal) or after
// reload_delay (default 500 ms). ErrNoReload without a reload signal.
func (p *Proc) Reload(m Model) error {
	a := p.a
	if a.ReloadSignal == "" {
		return ErrNoReload
	}
	if !p.Alive() {
		return errors.New("reload: daemon not running")
	}
	sig, err := ParseSignal(a.ReloadSignal)
	if err != nil {
		return setupErr(err)
	}
	if err := a.WriteFiles(m.WorkDir, m); err != nil {
		return err
	}
	logBefore := len(p.log.String())
	evBefore := 0
	if a.Events != "" {
		evs, err := p.Events()
		if err != nil {
			return setupErr(err)
		}
		evBefore = len(evs)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	const reloadTimeout = 5 * time.Second
	switch {
	case a.Events != "":
		return p.waitFor(reloadTimeout, fmt.Sprintf("%q event after the reload signal", a.ReloadEvent), func() (bool, error) {
			evs, err := p.Events()
			return FindEvent(evs, a.ReloadEvent, evBefore) >= 0, err
		})
	case a.ReloadLog != "":
		re := regexp.MustCompile(a.ReloadLog)
		return p.waitFor(reloadTimeout, fmt.Sprintf("log line matching %q after the reload signal", a.ReloadLog), func() (bool, error) {
			return re.MatchString(p.log.String()[logBefore:]), nil
		})
	}
	delay := a.ReloadDelay.Duration
	if delay == 0 {
		delay = 500 * time.Millisecond
	}
	time.Sleep(delay)
	return nil
}

// Alive reports whether the daemon is still running.
func (p *Proc) Alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// Pid returns the daemon's process id (`ip netns exec` execs it).
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Log returns what this run has written to stdout and stderr so far.
func (p *Proc) Log() string { return p.log.String() }
