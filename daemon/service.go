package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
)

// ServiceOptions are doormand's command-line choices.
type ServiceOptions struct {
	ConfigPath string    // doormand.cf
	Debug      bool      // -D: log to stderr at debug level, skip ownership checks
	HexDump    io.Writer // -X: dump captured frames here
	PidFile    string    // -p: overrides the config's pidfile
	Stderr     io.Writer // where debug logs and start-up errors go
}

// Service is doormand: the engine wired to the real capture, firewall and
// replay store, with pid file, logging, reload and signals.
type Service struct {
	opts    ServiceOptions
	cfg     *config.Daemon
	log     *slog.Logger
	logFile *os.File
	level   *slog.LevelVar
}

// LoadService reads the configuration and the guest list and sets up
// logging; it changes nothing on the system.
func LoadService(o ServiceOptions) (*Service, *Guests, error) {
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	cfg, warns, err := config.LoadDaemon(o.ConfigPath, !o.Debug)
	if err != nil {
		return nil, nil, err
	}
	s := &Service{opts: o, cfg: cfg, level: new(slog.LevelVar)}
	if err := s.setupLog(); err != nil {
		return nil, nil, err
	}
	for _, w := range warns {
		s.log.Warn("config: " + w.String())
	}
	guests, err := s.loadGuests()
	if err != nil {
		s.Close()
		return nil, nil, err
	}
	return s, guests, nil
}

// Config returns the configuration in force.
func (s *Service) Config() *config.Daemon { return s.cfg }

// Logger returns the service's logger.
func (s *Service) Logger() *slog.Logger { return s.log }

func (s *Service) setupLog() error {
	if s.opts.Debug || s.cfg.LogFile == "-" || s.cfg.LogFile == "stderr" {
		s.level.Set(s.cfg.LogLevel)
		if s.opts.Debug {
			s.level.Set(slog.LevelDebug)
		}
		s.log = slog.New(slog.NewTextHandler(s.opts.Stderr, &slog.HandlerOptions{Level: s.level, ReplaceAttr: syslogLevels}))
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(s.cfg.LogFile), 0o755); err != nil {
		return fmt.Errorf("logfile %s: %w", s.cfg.LogFile, err)
	}
	f, err := os.OpenFile(s.cfg.LogFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("logfile %s: %w", s.cfg.LogFile, err)
	}
	s.logFile = f
	s.level.Set(s.cfg.LogLevel)
	s.log = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: s.level, ReplaceAttr: syslogLevels}))
	return nil
}

func (s *Service) loadGuests() (*Guests, error) {
	list, warns, err := config.LoadGuestList(s.cfg.GuestList, !s.opts.Debug, config.NetResolver{})
	if err != nil {
		return nil, err
	}
	for _, w := range warns {
		s.log.Warn("guest list: " + w.String())
	}
	return NewGuests(list), nil
}

// Close releases the log file.
func (s *Service) Close() {
	if s.logFile != nil {
		s.logFile.Close()
	}
}

func (s *Service) settings() Settings {
	return Settings{
		Interface:      s.cfg.Interface,
		WaitFor:        s.cfg.WaitFor,
		Delay1:         s.cfg.ConnDelay1,
		Delay2:         s.cfg.ConnDelay2,
		SYNFromCapture: false, // capture no longer delivers SYNs; doors ask the kernel's socket table
	}
}

// Firewall builds the configured backend.
func (s *Service) Firewall() (Firewall, error) {
	c := s.cfg
	switch c.Firewall {
	case config.FirewallNftables:
		return firewall.NewNFTables(firewall.NFTConfig{Table: c.NftTable, Mark: c.DoorMark, Protect: c.Protect,
			KnockPort: c.Port, Logger: s.log}), nil
	case config.FirewallIptables:
		return firewall.NewIPTables(firewall.IPTConfig{Chain: c.IptablesChain, Logger: s.log}), nil
	case config.FirewallScript:
		for _, p := range []string{c.FirewallAdd, c.FirewallDel} {
			if !s.opts.Debug {
				if err := config.CheckOwner(p, config.KindScript); err != nil {
					return nil, err
				}
			}
		}
		return firewall.NewScript(firewall.ScriptConfig{Add: c.FirewallAdd, Del: c.FirewallDel,
			Journal: c.HashArchive + ".rules", Logger: s.log}), nil
	}
	return nil, fmt.Errorf("unknown firewall backend %q", c.Firewall)
}

func (s *Service) captureConfig() (capture.Config, error) {
	mode, err := capture.ParseMode(string(s.cfg.Capture))
	if err != nil {
		return capture.Config{}, err
	}
	return capture.Config{Interface: s.cfg.Interface, Mode: mode, LinkHeaderLen: s.cfg.LinkHeaderLength,
		KnockPort: s.cfg.Port, HexDump: s.opts.HexDump, Logger: s.log}, nil
}

// Run serves until ctx ends or a fatal error: it takes the pid file, opens
// the replay store, the capture and the firewall, then runs the engine,
// reloading on SIGHUP and logging counters on SIGUSR1.
func (s *Service) Run(ctx context.Context, guests *Guests) error {
	pidPath := s.cfg.PidFile
	if s.opts.PidFile != "" {
		pidPath = s.opts.PidFile
	}
	release, err := TakePidFile(pidPath, s.log)
	if err != nil {
		return err
	}
	defer release()

	if err := os.MkdirAll(filepath.Dir(s.cfg.HashArchive), 0o700); err != nil {
		return fmt.Errorf("hash-archive %s: %w", s.cfg.HashArchive, err)
	}
	store, err := replay.Open(s.cfg.HashArchive, replay.Options{Capacity: s.cfg.HashArchiveSize, Logger: s.log})
	if err != nil {
		return err
	}
	defer store.Close()

	fw, err := s.Firewall()
	if err != nil {
		return err
	}
	ccfg, err := s.captureConfig()
	if err != nil {
		return err
	}
	src, err := capture.Open(ctx, ccfg)
	if err != nil {
		return err
	}
	s.log.Info("doormand started", "interface", s.cfg.Interface, "port", s.cfg.Port, "capture", ccfg.Mode.String(),
		"link_type", src.LinkType(), "link_header_length", src.LinkHeaderLen(), "firewall", string(s.cfg.Firewall),
		"guests", guests.Len(), "replay_digests", store.Len(), "replay_capacity", store.Cap())

	eng := New(Options{Settings: s.settings(), Guests: guests, Source: src, Firewall: fw, Replay: store,
		Conns: SockDiag{}, Logger: s.log, StatsEvery: s.cfg.StatsInterval})

	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGHUP, syscall.SIGUSR1)
	defer signal.Stop(sig)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		for {
			select {
			case <-runCtx.Done():
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
	return eng.Run(runCtx)
}

// reload re-reads the configuration and guest list; if either is broken
// the old ones stay in force (CLASSIC-9.4/2). Settings that need a restart
// are reported.
func (s *Service) reload(eng *Engine) {
	cfg, warns, err := config.LoadDaemon(s.opts.ConfigPath, !s.opts.Debug)
	if err != nil {
		s.log.Error("reload failed: configuration kept as it was", "err", err)
		return
	}
	old := s.cfg
	s.cfg = cfg
	guests, gerr := s.loadGuests()
	if gerr != nil {
		s.cfg = old
		s.log.Error("reload failed: guest list kept as it was", "path", cfg.GuestList, "err", gerr)
		return
	}
	for _, w := range warns {
		s.log.Warn("config: " + w.String())
	}
	if cfg.Interface != old.Interface || cfg.Port != old.Port || cfg.Firewall != old.Firewall ||
		cfg.Capture != old.Capture || cfg.HashArchive != old.HashArchive || cfg.HashArchiveSize != old.HashArchiveSize ||
		cfg.NftTable != old.NftTable || cfg.DoorMark != old.DoorMark || !slices.Equal(cfg.Protect, old.Protect) ||
		cfg.IptablesChain != old.IptablesChain || cfg.FirewallAdd != old.FirewallAdd || cfg.FirewallDel != old.FirewallDel ||
		cfg.LinkHeaderLength != old.LinkHeaderLength || cfg.PidFile != old.PidFile || cfg.LogFile != old.LogFile {
		s.log.Warn("reload: changes to interface, port, capture, link-header-length, firewall settings, " +
			"hash-archive, pidfile and logfile take effect on restart; the guest list, timers and loglevel are reloaded")
		// Keep running with what is open.
		keep := *old
		keep.GuestList, keep.WaitFor, keep.ConnDelay1, keep.ConnDelay2 = cfg.GuestList, cfg.WaitFor, cfg.ConnDelay1, cfg.ConnDelay2
		keep.LogLevel, keep.StatsInterval = cfg.LogLevel, cfg.StatsInterval
		cfg = &keep
		s.cfg = cfg
	}
	if !s.opts.Debug {
		s.level.Set(cfg.LogLevel)
	}
	eng.Reload(s.settings(), guests)
	s.log.Info("reloaded", "guests", guests.Len())
}

// ErrAlreadyRunning is returned when the pid file names a live process.
var ErrAlreadyRunning = errors.New("doormand is already running")

// TakePidFile writes the pid file. A pid file whose process is gone (a
// crash) is replaced with a warning instead of blocking the start, as 0.81
// did; one whose process lives is refused. The returned func removes it.
func TakePidFile(path string, log *slog.Logger) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	if b, err := os.ReadFile(path); err == nil {
		var pid int
		if _, serr := fmt.Sscanf(string(b), "%d", &pid); serr == nil && pid > 0 && pid != os.Getpid() && alive(pid) {
			return nil, fmt.Errorf("%w: pid file %s names live process %d", ErrAlreadyRunning, path, pid)
		}
		log.Warn("replacing stale pid file", "path", path, "content", string(b))
		os.Remove(path)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("pid file %s: %w", path, err)
	}
	fmt.Fprintf(f, "%d\n", os.Getpid())
	f.Close()
	return func() { os.Remove(path) }, nil
}

// alive reports whether pid is a running doormand. After a crash and a
// reboot the pid in a stale file often belongs to some other process, so
// where /proc tells, the process must run a program of the same name as
// this one.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	self, err1 := os.Readlink("/proc/self/exe")
	other, err2 := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err1 != nil || err2 != nil {
		return true // cannot tell: assume it is one
	}
	name := func(p string) string { return filepath.Base(strings.TrimSuffix(p, " (deleted)")) }
	return name(self) == name(other)
}

// ShutdownTimeout bounds how long shutdown may take to remove rules.
const ShutdownTimeout = 30 * time.Second

// syslogLevels prints the levels between slog's with their syslog names, as
// 0.81's log did (NOTICE for accepted knocks and closed doors).
func syslogLevels(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey && len(groups) == 0 {
		// Microseconds: latency is measured from these records.
		if t, ok := a.Value.Any().(time.Time); ok {
			a.Value = slog.StringValue(t.UTC().Format("2006-01-02T15:04:05.000000Z07:00"))
		}
	}
	if a.Key == slog.LevelKey && len(groups) == 0 {
		if l, ok := a.Value.Any().(slog.Level); ok && l == LevelNotice {
			a.Value = slog.StringValue("NOTICE")
		}
	}
	return a
}
