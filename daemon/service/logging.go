package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"

	"github.com/coreos/go-systemd/v22/journal"
	"github.com/doorman-project/doorman/daemon/config"
)

// logDest is where the log goes, chosen from -D and logfile.
type logDest int

const (
	destStderr  logDest = iota // -D, logfile - or stderr
	destJournal                // logfile not set, standard error is the journal
	destFile                   // a file, reopened on SIGHUP
	destDiscard                // --check: findings are printed, not logged
)

// logDestination returns where the log goes and, for a file, its path:
// the journal when systemd connected standard error to it and logfile is
// not set, else logfile or, not set, 0.81's /var/log/doorman.
func (s *Service) logDestination() (logDest, string) {
	switch {
	case s.opts.Check:
		return destDiscard, ""
	case s.opts.Debug || s.cfg.LogFile == "-" || s.cfg.LogFile == "stderr":
		return destStderr, ""
	case s.cfg.LogFile != "":
		return destFile, s.cfg.LogFile
	}
	if ok, _ := journal.StderrIsJournalStream(); ok && s.opts.Stderr == os.Stderr {
		return destJournal, ""
	}
	return destFile, config.DefaultLogFile
}

// setupLog opens the log: a text log of "time level msg key=value"
// lines with syslog level names, as 0.81's; in the journal without the
// time (the journal stamps each line) and with the level as the line's
// syslog priority.
func (s *Service) setupLog() error {
	s.level.Set(s.cfg.LogLevel)
	if s.opts.Debug {
		s.level.Set(slog.LevelDebug)
	}
	opts := &slog.HandlerOptions{Level: s.level, ReplaceAttr: syslogLevels}
	dest, path := s.logDestination()
	switch dest {
	case destDiscard:
		s.log = slog.New(slog.DiscardHandler)
	case destStderr:
		s.log = slog.New(slog.NewTextHandler(s.opts.Stderr, opts))
	case destJournal:
		s.log = slog.New(newJournalHandler(s.opts.Stderr, s.level))
	case destFile:
		f, err := openLogFile(path)
		if err != nil {
			return err
		}
		s.logFile = &reopener{path: path, f: f}
		s.log = slog.New(slog.NewTextHandler(s.logFile, opts))
	}
	return nil
}

// openLogFile opens the log file for appending, as a state file (no
// symbolic link, in a directory only root can write). A directory at the
// path (the systemd unit's LogsDirectory is /var/log/doorman, 0.81's
// default log file) is named as such, with what to write instead.
func openLogFile(path string) (*os.File, error) {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("logfile %s is a directory: name a file in it (logfile %s), "+
			"or leave logfile out to log to the journal under systemd", path, filepath.Join(path, "doormand.log"))
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("logfile %s: %w", path, err)
	}
	f, err := openStateFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE)
	if err != nil {
		return nil, fmt.Errorf("logfile %s: %w", path, err)
	}
	return f, nil
}

// reopener is the log file, which a reload reopens so that logrotate's
// rename-and-HUP moves the log to a new file.
type reopener struct {
	path string
	mu   sync.Mutex
	f    *os.File
}

// Write writes one log record.
func (r *reopener) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Write(p)
}

// reopen opens the path again and switches to it; on failure the old file
// stays in use.
func (r *reopener) reopen() error {
	f, err := openLogFile(r.path)
	if err != nil {
		return err
	}
	r.mu.Lock()
	old := r.f
	r.f = f
	r.mu.Unlock()
	return old.Close()
}

func (r *reopener) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.f.Close()
}

// journalHandler writes records to systemd's journal through standard
// error: one line each, "<priority>level msg key=value...", which journald
// stores at that syslog priority (SyslogLevelPrefix=yes, the default).
type journalHandler struct {
	mu   *sync.Mutex
	w    io.Writer
	buf  *bytes.Buffer
	text slog.Handler // formats into buf
}

func newJournalHandler(w io.Writer, level slog.Leveler) *journalHandler {
	buf := new(bytes.Buffer)
	return &journalHandler{mu: new(sync.Mutex), w: w, buf: buf,
		text: slog.NewTextHandler(buf, &slog.HandlerOptions{Level: level, ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{} // the journal has its own
			}
			return syslogLevels(groups, a)
		}})}
}

func (h *journalHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.text.Enabled(ctx, l)
}

func (h *journalHandler) Handle(ctx context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.buf.Reset()
	h.buf.WriteString("<" + strconv.Itoa(syslogPriority(r.Level)) + ">")
	if err := h.text.Handle(ctx, r); err != nil {
		return err
	}
	_, err := h.w.Write(h.buf.Bytes())
	if errors.Is(err, syscall.EPIPE) {
		return nil // journald gone (stopping): nothing to do about it
	}
	return err
}

func (h *journalHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.text = h.text.WithAttrs(as)
	return &c
}

func (h *journalHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.text = h.text.WithGroup(name)
	return &c
}

// syslogPriority is the syslog priority (0 emerg .. 7 debug) of l.
func syslogPriority(l slog.Level) int {
	switch {
	case l >= config.LevelEmerg:
		return 0
	case l >= config.LevelAlert:
		return 1
	case l >= config.LevelCrit:
		return 2
	case l >= slog.LevelError:
		return 3
	case l >= slog.LevelWarn:
		return 4
	case l >= config.LevelNotice:
		return 5
	case l >= slog.LevelInfo:
		return 6
	}
	return 7
}

// syslogLevels prints the levels with their syslog names, as 0.81's log
// did (NOTICE for accepted knocks and closed doors, CRIT and above).
func syslogLevels(groups []string, a slog.Attr) slog.Attr {
	if a.Key == slog.LevelKey && len(groups) == 0 {
		if l, ok := a.Value.Any().(slog.Level); ok {
			a.Value = slog.StringValue(config.LevelName(l))
		}
	}
	return a
}
