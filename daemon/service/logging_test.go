package service

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/doorman-project/doorman/daemon/config"
)

// TestJournalHandler: under systemd each line starts with its syslog
// priority, has no time (the journal stamps it) and keeps the syslog level
// names and attributes, also of derived loggers.
func TestJournalHandler(t *testing.T) {
	var b bytes.Buffer
	lv := new(slog.LevelVar)
	log := slog.New(newJournalHandler(&b, lv))
	log.Log(t.Context(), config.LevelNotice, "door closed", "door", 7)
	log.With("src", "198.18.0.1").Warn("refused")
	log.Debug("not shown at info")
	log.Log(t.Context(), config.LevelCrit, "firewall lost")
	want := "<5>level=NOTICE msg=\"door closed\" door=7\n" +
		"<4>level=WARNING msg=refused src=198.18.0.1\n" +
		"<2>level=CRIT msg=\"firewall lost\"\n"
	if b.String() != want {
		t.Fatalf("journal lines\n%s\nwant\n%s", b.String(), want)
	}
}

// TestLogReopen: a reload reopens the log file, so that logrotate's
// rename-then-HUP leaves the old file complete and the new lines in a new
// file at the configured path.
func TestLogReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "doormand.log")
	f, err := openLogFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := &reopener{path: path, f: f}
	defer r.Close()
	log := slog.New(slog.NewTextHandler(r, nil))
	log.Info("before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	log.Info("after the rename, before the reopen")
	if err := r.reopen(); err != nil {
		t.Fatal(err)
	}
	log.Info("after the reopen")
	old, _ := os.ReadFile(path + ".1")
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), "before") || !strings.Contains(string(old), "before the reopen") || strings.Contains(string(old), "after the reopen") {
		t.Errorf("rotated file:\n%s", old)
	}
	if !strings.Contains(string(cur), "after the reopen") || strings.Contains(string(cur), "before") {
		t.Errorf("new file:\n%s", cur)
	}
}

// TestLogFileIsDirectory: 0.81's default log file is the unit's
// LogsDirectory; the error says so and what to write instead.
func TestLogFileIsDirectory(t *testing.T) {
	dir := t.TempDir()
	_, err := openLogFile(dir)
	if err == nil || !strings.Contains(err.Error(), "is a directory") || !strings.Contains(err.Error(), filepath.Join(dir, "doormand.log")) {
		t.Fatalf("err %v", err)
	}
}

// TestLogDestination: -D and logfile - go to stderr, a file to the file,
// no logfile outside the journal to 0.81's default, --check nowhere.
func TestLogDestination(t *testing.T) {
	for _, c := range []struct {
		opts    Options
		logfile string
		want    logDest
		path    string
	}{
		{Options{Debug: true}, "/x/log", destStderr, ""},
		{Options{}, "-", destStderr, ""},
		{Options{}, "stderr", destStderr, ""},
		{Options{}, "/x/log", destFile, "/x/log"},
		{Options{Stderr: &bytes.Buffer{}}, "", destFile, config.DefaultLogFile},
		{Options{Check: true}, "/x/log", destDiscard, ""},
	} {
		s := &Service{opts: c.opts, cfg: config.DefaultDaemon()}
		s.cfg.LogFile = c.logfile
		if got, path := s.logDestination(); got != c.want || path != c.path {
			t.Errorf("%+v logfile %q: %v %q, want %v %q", c.opts, c.logfile, got, path, c.want, c.path)
		}
	}
}
