package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/daemon"
	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// Options are doormand's command-line choices.
type Options struct {
	ConfigPath string    // doormand.cf
	Debug      bool      // -D: log to stderr at debug level, skip ownership checks
	HexDump    io.Writer // -X: dump captured frames here
	PidFile    string    // -p: overrides the config's pidfile
	Stderr     io.Writer // where debug logs and start-up errors go
	Stdout     io.Writer // where "--events -" writes
	// Check is --check: Load logs nothing and creates nothing; the caller
	// prints Findings.
	Check bool
	// Events, if set, is a file the events (daemon.Event, as JSON lines)
	// are appended to; "-" = Stdout.
	Events string
}

// Service is doormand: the engine wired to the real capture, firewall and
// replay store, with pid file, logging, reload and signals.
type Service struct {
	opts    Options
	cfg     *config.Daemon
	log     *slog.Logger
	logFile *reopener // nil unless the log is a file
	warns   []config.Warning
	level   *slog.LevelVar
	events  *eventWriter
	opener  *protocol.Opener   // the private key for modern knocks; nil = none
	onEvent func(daemon.Event) // tests: sees every event the service reports
}

// Load reads the configuration and the guest list and sets up logging; it
// changes nothing on the system.
func Load(o Options) (*Service, *daemon.Guests, error) {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	cfg, warns, err := config.LoadDaemon(o.ConfigPath, !o.Debug)
	if err != nil {
		return nil, nil, err
	}
	s := &Service{opts: o, cfg: cfg, level: new(slog.LevelVar)}
	if err := s.setupLog(); err != nil {
		return nil, nil, err
	}
	s.warns = warns
	for _, w := range warns {
		s.log.Warn("config: " + w.String())
	}
	guests, err := s.loadGuests()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	if s.opener, err = loadModernKey(cfg, guests, !o.Debug, s.log); err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, guests, nil
}

// Config returns the configuration in force.
func (s *Service) Config() *config.Daemon { return s.cfg }

// Logger returns the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

// openStateFile opens a file the daemon writes as root: only in a
// directory no other user can write, never through a symbolic link (an
// attacker's link would make root write wherever it points), and only a
// regular file (audit finding 7, CLASSIC-5.8).
func openStateFile(path string, flag int) (*os.File, error) {
	if err := config.CheckStatePath(path); err != nil {
		return nil, err
	}
	return config.OpenStateFile(path, flag, 0o600)
}

func (s *Service) loadGuests() (*daemon.Guests, error) {
	list, warns, err := config.LoadGuestList(s.cfg.GuestList, !s.opts.Debug, config.NetResolver{})
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		s.log.Warn("guest list: " + w.String())
	}
	if s.opts.Check {
		s.warns = append(s.warns, warns...)
	}
	return daemon.NewGuests(list), nil
}

// Close releases the log and events files.
func (s *Service) Close() {
	if s.logFile != nil {
		s.logFile.Close()
	}
	if s.events != nil {
		s.events.close()
	}
}

func (s *Service) settings() daemon.Settings {
	st := daemon.Settings{
		Interface: s.cfg.Interface,
		WaitFor:   s.cfg.WaitFor,
		Delay1:    s.cfg.ConnDelay1,
		Delay2:    s.cfg.ConnDelay2,
		MaxDoors:  s.cfg.MaxDoors,
	}
	modernSettings(s.cfg, &st)
	return st
}

// Firewall builds the configured backend.
func (s *Service) Firewall() (daemon.Firewall, error) {
	c := s.cfg
	doors := firewall.NFTConfig{Table: c.NftTable, Mark: c.DoorMark, Protect: c.Protect, KnockPort: c.Port,
		KnockSocket: c.Capture == capture.ModeSocket, LogGroup: c.LogGroup, MaxDoors: c.MaxDoors, Logger: s.log}
	switch c.Firewall {
	case config.FirewallNftables:
		return firewall.NewNFTables(doors), nil
	case config.FirewallIptables:
		return firewall.NewIPTables(firewall.IPTConfig{Chain: c.IptablesChain, Doors: doors, Logger: s.log}), nil
	case config.FirewallScript:
		if err := config.CheckStatePath(c.HashArchive + ".rules"); err != nil {
			return nil, fmt.Errorf("firewall journal: %w", err)
		}
		if !s.opts.Debug {
			for _, p := range []string{c.FirewallAdd, c.FirewallDel} {
				if err := config.CheckOwner(p, config.KindScript); err != nil {
					return nil, err
				}
			}
		}
		doors.Protect = nil // the scripts and the admin's ruleset decide what is closed
		return firewall.NewScript(firewall.ScriptConfig{Add: c.FirewallAdd, Del: c.FirewallDel,
			Journal: c.HashArchive + ".rules", Doors: doors, Logger: s.log}), nil
	}
	return nil, fmt.Errorf("unknown firewall backend %q", c.Firewall)
}

func (s *Service) captureConfig() capture.Config {
	return capture.Config{Interface: s.cfg.Interface, Mode: s.cfg.Capture, LinkHeaderLen: s.cfg.LinkHeaderLength,
		KnockPort: s.cfg.Port, HexDump: s.opts.HexDump, Logger: s.log}
}

// Run serves until ctx ends or a fatal error, in an order that keeps the
// promises when anything fails: the pid file first (a running doormand's
// firewall must not be touched); then the firewall, which removes what a
// crashed run left behind whatever else fails later (CLASSIC-6.9); then
// the replay store and the capture; "ready" only once all of it is in
// place. It reloads on SIGHUP and logs counters on SIGUSR1.
func (s *Service) Run(ctx context.Context, guests *daemon.Guests) error {
	release, err := TakePidFile(s.pidPath(), s.log)
	if err != nil {
		return err
	}
	defer release()
	if s.opts.Events != "" {
		if s.events, err = openEvents(s.opts.Events, s.opts.Stdout); err != nil {
			return fmt.Errorf("events: %w", err)
		}
	}

	fw, err := s.Firewall()
	if err != nil {
		return err
	}
	ccfg := s.captureConfig()
	var store *replay.Store
	defer func() {
		if store != nil {
			if err := store.Close(); err != nil {
				s.log.Error("replay store", "err", err)
			}
		}
	}()
	var stamps *replay.Stamps
	defer s.closeStamps(&stamps)
	var src *capture.Conn
	open := func(ctx context.Context) (daemon.PacketSource, daemon.ReplayStore, error) {
		if err := os.MkdirAll(filepath.Dir(s.cfg.HashArchive), 0o700); err != nil {
			return nil, nil, fmt.Errorf("hash-archive %s: %w", s.cfg.HashArchive, err)
		}
		if err := config.CheckStatePath(s.cfg.HashArchive); err != nil {
			return nil, nil, fmt.Errorf("hash-archive: %w", err)
		}
		st, err := replay.Open(s.cfg.HashArchive, replay.Options{Capacity: s.cfg.HashArchiveSize, Logger: s.log})
		if err != nil {
			return nil, nil, err
		}
		c, err := capture.Open(ctx, ccfg)
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		store, src = st, c
		return c, st, nil
	}
	conns, err := NewSockDiag()
	if err != nil {
		return err
	}
	defer conns.Close()
	eng := daemon.New(daemon.Options{Settings: s.settings(), Guests: guests, Firewall: fw, Open: open,
		Opener: s.opener, OpenStamps: s.stampOpener(&stamps), Conns: conns, Logger: s.log, StatsEvery: s.cfg.StatsInterval,
		Events: func(ev daemon.Event) {
			if ev.Kind == daemon.EventReady {
				s.warnBlockers()
				s.log.Info("doormand started", "interface", s.cfg.Interface, "port", s.cfg.Port, "capture", ccfg.Mode.String(),
					"link_type", src.LinkType(), "link_header_length", src.LinkHeaderLen(), "firewall", string(s.cfg.Firewall),
					"guests", guests.Len(), "modern_guests", guests.Modern(), "replay_digests", store.Len(), "replay_capacity", store.Cap())
				s.notifyReady("serving: knocks on %s port %d, %s firewall, %d guests", s.cfg.Interface, s.cfg.Port, s.cfg.Firewall, guests.Len())
			}
			s.emit(ev)
		}})

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-runCtx.Done():
				s.notify("STOPPING=1")
				return
			case v := <-sig:
				if v == syscall.SIGUSR1 {
					eng.LogStats()
					continue
				}
				s.reload(eng)
			}
		}
	}()
	err = eng.Run(runCtx)
	cancel()
	wg.Wait()
	return err
}

// emit reports ev: to the events file, and to a test's hook.
func (s *Service) emit(ev daemon.Event) {
	if s.onEvent != nil {
		s.onEvent(ev)
	}
	s.events.write(ev)
}

// reload re-reads the configuration and guest list; if either is broken
// the old ones stay in force (CLASSIC-9.4/2). Only the reloadable settings
// change; restart-only ones that differ are reported and kept until a
// restart.
func (s *Service) reload(eng *daemon.Engine) {
	s.notifyReloading()
	// The log first, whatever becomes of the rest: logrotate renamed it
	// and sent the HUP.
	if s.logFile != nil {
		if err := s.logFile.reopen(); err != nil {
			s.log.Error("cannot reopen the log file: still writing to the old one", "err", err)
		}
	}
	fail := func(msg string, err error) {
		s.log.Error(msg, "err", err)
		s.emit(daemon.Event{Time: time.Now(), Kind: daemon.EventReload, Err: err.Error()})
		s.notify("READY=1", "STATUS="+oneLine(reloadFailedStatus(err)))
	}
	cfg, warns, err := config.LoadDaemon(s.opts.ConfigPath, !s.opts.Debug)
	if err != nil {
		fail("reload failed: configuration kept as it was", err)
		return
	}
	next := &config.Daemon{Restart: s.cfg.Restart, Reloadable: cfg.Reloadable}
	old := s.cfg
	s.cfg = next
	guests, gerr := s.loadGuests()
	if gerr != nil {
		s.cfg = old
		fail("reload failed: guest list kept as it was", fmt.Errorf("%s: %w", cfg.GuestList, gerr))
		return
	}
	opener, kerr := loadModernKey(cfg, guests, !s.opts.Debug, s.log)
	if kerr != nil {
		s.cfg = old
		fail("reload failed: configuration and guest list kept as they were", kerr)
		return
	}
	for _, w := range warns {
		s.log.Warn("config: " + w.String())
	}
	if changed := cfg.Restart.Changed(old.Restart); len(changed) > 0 {
		s.log.Warn("reload: these settings take effect on restart; until then the old ones stay",
			"keywords", strings.Join(changed, " "))
	}
	if !s.opts.Debug {
		s.level.Set(next.LogLevel)
	}
	s.opener = opener
	eng.SetOpener(opener)
	eng.Reload(s.settings(), guests)
	s.warnBlockers()
	s.log.Info("reloaded", "guests", guests.Len())
	s.notifyReady("serving: knocks on %s port %d, %s firewall, %d guests; reloaded at %s",
		s.cfg.Interface, s.cfg.Port, s.cfg.Firewall, guests.Len(), time.Now().Format(time.TimeOnly))
	s.emit(daemon.Event{Time: time.Now(), Kind: daemon.EventReload})
}

// Blockers returns the chains of the host's firewall that would drop what
// doors let in (the admin's accept line for the door mark is missing),
// for the nftables backend, the one that needs that line.
func (s *Service) Blockers() ([]firewall.Blocker, error) {
	if s.cfg.Firewall != config.FirewallNftables {
		return nil, nil
	}
	return firewall.InspectInput(s.cfg.DoorMark, s.cfg.NftTable)
}

// warnBlockers logs every blocker with the line that fixes it: without
// it doors "open" and connections still never arrive.
func (s *Service) warnBlockers() {
	bs, err := s.Blockers()
	if err != nil {
		s.log.Debug("cannot inspect the host's firewall", "err", err)
	}
	for _, b := range bs {
		s.log.Warn("the host's firewall drops what doors let in: add the accept line for the door mark",
			"where", b.Where, "why", b.Why, "add", b.Fix)
	}
}

// eventWriter appends events as JSON lines.
type eventWriter struct {
	mu sync.Mutex
	w  *bufio.Writer
	f  *os.File // nil for stdout
}

func openEvents(path string, stdout io.Writer) (*eventWriter, error) {
	if path == "-" {
		return &eventWriter{w: bufio.NewWriter(stdout)}, nil
	}
	f, err := openStateFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return nil, err
	}
	return &eventWriter{w: bufio.NewWriter(f), f: f}, nil
}

// write appends ev and flushes: a reader waiting for it sees it at once.
func (w *eventWriter) write(ev daemon.Event) {
	if w == nil {
		return
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w.Write(b)
	w.w.WriteByte('\n')
	w.w.Flush()
}

func (w *eventWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.w.Flush()
	if w.f != nil {
		w.f.Close()
	}
}

// ErrAlreadyRunning is returned when the pid file names a live process.
var ErrAlreadyRunning = errors.New("doormand is already running")

// TakePidFile writes the pid file. A pid file whose process is gone (a
// crash) is replaced with a warning instead of blocking the start, as 0.81
// did; one whose process lives is refused. The file is never read or
// written through a symbolic link. The returned func removes it.
func TakePidFile(path string, log *slog.Logger) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if err := config.CheckStatePath(path); err != nil {
		return nil, fmt.Errorf("pid file: %w", err)
	}
	if f, err := config.OpenStateFile(path, os.O_RDONLY, 0); err == nil {
		b, _ := io.ReadAll(io.LimitReader(f, 64))
		f.Close()
		pid, perr := strconv.Atoi(string(bytes.TrimSpace(b)))
		if perr == nil && pid > 0 && pid != os.Getpid() && alive(pid) {
			return nil, fmt.Errorf("%w: pid file %s names live process %d", ErrAlreadyRunning, path, pid)
		}
		stale := "not a pid"
		if perr == nil {
			stale = strconv.Itoa(pid)
		}
		log.Warn("replacing stale pid file", "path", path, "pid", stale)
		os.Remove(path)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	// O_EXCL also refuses a symbolic link planted at the path.
	f, err := config.OpenStateFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return func() { os.Remove(path) }, nil
}

// alive reports whether pid is a running doormand. After a crash and a
// reboot the pid in a stale file often belongs to some other process: a
// zombie, a kernel thread, or a program of another name are not doormand.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !errors.Is(err, os.ErrNotExist) // no procfs: cannot tell, assume it is
	}
	// "pid (comm) state ppid pgrp session tty tpgid flags ...": comm may
	// hold spaces and parentheses, so read after the last ')'.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+1:]
	}
	f := strings.Fields(rest)
	if len(f) >= 7 {
		if f[0] == "Z" || f[0] == "X" {
			return false // a zombie or dead task holds no daemon
		}
		if flags, err := strconv.ParseUint(f[6], 10, 64); err == nil && flags&pfKThread != 0 {
			return false
		}
	}
	self, err1 := os.Readlink("/proc/self/exe")
	other, err2 := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err1 != nil || err2 != nil {
		return err2 == nil || !errors.Is(err2, os.ErrNotExist)
	}
	name := func(p string) string { return filepath.Base(strings.TrimSuffix(p, " (deleted)")) }
	return name(self) == name(other)
}

// pfKThread is the kernel's PF_KTHREAD task flag (field 9 of /proc/PID/stat).
const pfKThread = 0x00200000
