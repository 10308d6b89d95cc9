package doormandtest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// KnockPort is the knock port of Config.
const KnockPort = 1001

// Host runs programs and code inside one network namespace
// (internal/netsim's Host).
type Host interface {
	// Command returns a command that runs name inside the host.
	Command(ctx context.Context, name string, args ...string) *exec.Cmd
	// Do runs fn on a thread inside the host.
	Do(fn func() error) error
}

// Config returns the doormand.cf lines of a daemon under test watching
// iface: knock port KnockPort, waitfor as given, connection-delay-1 0.5 s
// and connection-delay-2 1 s so that doors close soon after their
// connection, debug logging and no periodic counters; then the extra lines
// (a firewall keyword, capture, protect...), each ended by a newline.
func Config(iface string, waitfor time.Duration, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "interface %s\nport %d\nwaitfor %s\nconnection-delay-1 500000\nconnection-delay-2 1\n"+
		"loglevel debug\nstats-interval 0\n", iface, KnockPort, waitfor)
	for _, x := range extra {
		if x == "" {
			continue
		}
		b.WriteString(x)
		if !strings.HasSuffix(x, "\n") {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// Options describe one doormand under test.
type Options struct {
	// Binary is the doormand program (see Binaries).
	Binary string
	// Dir is where Start writes doormand.cf and the guest list and where
	// doormand keeps its replay store, pid file, log (doormand.log) and
	// events (events.jsonl). It must exist.
	Dir string
	// Config is doormand.cf without guestlist, hash-archive and pidfile,
	// which Start adds, pointing into Dir (see Config).
	Config string
	// Guests is the guest list.
	Guests string
	// HexDump runs doormand with -X; what it prints is in Dir/hexdump.txt.
	HexDump bool
	// Wrap, if set, is a program and its arguments that run doormand
	// (appended as the last arguments), such as setpriv with the systemd
	// unit's capabilities.
	Wrap []string
	// Env is added to doormand's environment (NOTIFY_SOCKET=...).
	Env []string
	// ReadyWithin bounds the wait for the ready event; 0 means 10 s.
	ReadyWithin time.Duration
}

// StopWithin bounds how long Stop waits for doormand to exit on SIGTERM
// before it kills it: the daemon's own bound on removing its rules, plus
// some.
const StopWithin = 40 * time.Second

// Daemon is a doormand running in a host, with its event stream.
type Daemon struct {
	*Stream
	host Host
	opts Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	err    error         // cmd's exit, once exited is closed
}

// Start writes the configuration and guest list into o.Dir, starts
// doormand -D in h and returns once doormand reports ready, that is with
// its firewall in place (or with an error holding the log's tail if it
// exits or does not become ready in time). ctx bounds the start only;
// stop the daemon with Stop, Kill or Close.
func Start(ctx context.Context, h Host, o Options) (*Daemon, error) {
	if o.ReadyWithin <= 0 {
		o.ReadyWithin = 10 * time.Second
	}
	d := &Daemon{Stream: NewStream(filepath.Join(o.Dir, "events.jsonl")), host: h, opts: o}
	cf := o.Config + fmt.Sprintf("guestlist %s\nhash-archive %s\npidfile %s\n",
		d.path("guests"), d.path("replay"), d.path("pid"))
	if err := os.WriteFile(d.path("doormand.cf"), []byte(cf), 0o600); err != nil {
		return nil, err
	}
	if err := d.WriteGuests(o.Guests); err != nil {
		return nil, err
	}
	if err := d.Restart(ctx); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Daemon) path(name string) string { return filepath.Join(d.opts.Dir, name) }

// Dir returns the daemon's directory (Options.Dir).
func (d *Daemon) Dir() string { return d.opts.Dir }

// ConfigPath returns the path of doormand.cf.
func (d *Daemon) ConfigPath() string { return d.path("doormand.cf") }

// WriteGuests replaces the guest list; doormand reads it at start and on
// Reload.
func (d *Daemon) WriteGuests(content string) error {
	return os.WriteFile(d.path("guests"), []byte(content), 0o600)
}

// Restart starts doormand again after Stop or Kill (Start starts it the
// first time) and waits for its ready event. Events and the log continue
// the earlier run's files.
func (d *Daemon) Restart(ctx context.Context) error {
	d.mu.Lock()
	if d.cmd != nil {
		d.mu.Unlock()
		return errors.New("doormandtest: doormand is running")
	}
	ready := d.Count(IsKind(KindReady))
	logf, err := os.OpenFile(d.path("doormand.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		d.mu.Unlock()
		return err
	}
	out := logf
	args := []string{"-D", "--events", d.path("events.jsonl"), "-f", d.ConfigPath()}
	if d.opts.HexDump {
		args = append(args, "-X")
		if out, err = os.OpenFile(d.path("hexdump.txt"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			logf.Close()
			d.mu.Unlock()
			return err
		}
	}
	// The process outlives ctx, which bounds only the start.
	name := d.opts.Binary
	if len(d.opts.Wrap) > 0 {
		name, args = d.opts.Wrap[0], append(append(d.opts.Wrap[1:len(d.opts.Wrap):len(d.opts.Wrap)], d.opts.Binary), args...)
	}
	cmd := d.host.Command(context.Background(), name, args...)
	cmd.Stdout, cmd.Stderr = out, logf
	if len(d.opts.Env) > 0 {
		cmd.Env = append(os.Environ(), d.opts.Env...)
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		out.Close()
		d.mu.Unlock()
		return fmt.Errorf("doormandtest: start doormand: %w", err)
	}
	exited := make(chan struct{})
	d.cmd, d.exited = cmd, exited
	go func() {
		err := cmd.Wait()
		logf.Close()
		out.Close()
		d.mu.Lock()
		d.err = err
		d.mu.Unlock()
		close(exited)
	}()
	d.mu.Unlock()

	deadline := time.Now().Add(d.opts.ReadyWithin)
	for d.Count(IsKind(KindReady)) <= ready {
		if err := d.Stream.Err(); err != nil {
			return err
		}
		select {
		case <-exited:
			d.mu.Lock()
			d.cmd = nil
			err := d.err
			d.mu.Unlock()
			return fmt.Errorf("doormandtest: doormand exited before it was ready (%v); log:\n%s", err, d.LogTail(40))
		case <-ctx.Done():
			return errors.Join(ctx.Err(), d.Kill())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return errors.Join(fmt.Errorf("doormandtest: doormand not ready within %v; log:\n%s", d.opts.ReadyWithin, d.LogTail(40)), d.Kill())
		}
	}
	return nil
}

// Running reports whether doormand is running.
func (d *Daemon) Running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cmd != nil
}

// Pid returns the process id of the running doormand, or 0.
func (d *Daemon) Pid() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Signal sends sig to the running doormand (`ip netns exec` execs it, so
// the process is doormand itself).
func (d *Daemon) Signal(sig syscall.Signal) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cmd == nil {
		return errors.New("doormandtest: doormand is not running")
	}
	return d.cmd.Process.Signal(sig)
}

// Stop sends SIGTERM and waits for doormand to exit, killing it after
// StopWithin. It returns doormand's exit error (nil for status 0).
func (d *Daemon) Stop() error { return d.end(syscall.SIGTERM, StopWithin) }

// Kill kills doormand with SIGKILL, leaving whatever it had set up (a
// crash), and waits for it to be gone.
func (d *Daemon) Kill() error {
	err := d.end(syscall.SIGKILL, 10*time.Second)
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return nil // killed, as asked
	}
	return err
}

func (d *Daemon) end(sig syscall.Signal, within time.Duration) error {
	d.mu.Lock()
	cmd, exited := d.cmd, d.exited
	d.mu.Unlock()
	if cmd == nil {
		return nil
	}
	cmd.Process.Signal(sig)
	var err error
	select {
	case <-exited:
		d.mu.Lock()
		err = d.err
		d.mu.Unlock()
	case <-time.After(within):
		cmd.Process.Kill()
		<-exited
		err = fmt.Errorf("doormandtest: doormand did not exit within %v of %v", within, sig)
	}
	d.mu.Lock()
	d.cmd = nil
	d.mu.Unlock()
	return err
}

// Close stops doormand if it runs (for cleanups).
func (d *Daemon) Close() error { return d.Stop() }

// Reload sends SIGHUP and returns the reload event that answers it.
func (d *Daemon) Reload(within time.Duration) (Event, error) {
	return d.ask(syscall.SIGHUP, KindReload, within)
}

// Counters sends SIGUSR1 and returns the counters event that answers it.
func (d *Daemon) Counters(within time.Duration) (Event, error) {
	return d.ask(syscall.SIGUSR1, KindCounters, within)
}

func (d *Daemon) ask(sig syscall.Signal, k Kind, within time.Duration) (Event, error) {
	before := d.Count(IsKind(k))
	if err := d.Signal(sig); err != nil {
		return Event{}, err
	}
	evs, err := d.Wait(IsKind(k), before+1, within)
	if err != nil {
		return Event{}, fmt.Errorf("no %s event after %v: %w", k, sig, err)
	}
	return evs[before], nil
}

// Log returns doormand's log so far (for people: tests read events).
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.path("doormand.log"))
	return string(b)
}

// LogTail returns the last n lines of the log.
func (d *Daemon) LogTail(n int) string {
	lines := strings.SplitAfter(d.Log(), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// HexDump returns what doormand -X printed (Options.HexDump).
func (d *Daemon) HexDump() string {
	b, _ := os.ReadFile(d.path("hexdump.txt"))
	return string(b)
}
