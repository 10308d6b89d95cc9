//go:build linux

// Package adapter reads the adapter files that describe how to run an
// implementation of doorman (conformance/README.md, "The adapter") and
// runs the daemon they describe inside a network namespace. The
// conformance suite and doorman-sim both drive implementations through it.
package adapter

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/BurntSushi/toml"
)

// Adapter kinds.
const (
	KindDaemon = "daemon"
	KindClient = "client"
)

// FileTemplate is one file an adapter renders into the work directory.
type FileTemplate struct {
	Name     string `toml:"name"`     // relative to the work directory
	Mode     string `toml:"mode"`     // octal, default 0600
	Template string `toml:"template"` // text/template source
}

// Adapter describes how to run one implementation. It is read from TOML;
// conformance/README.md is the reference for every key. Every string in
// Files, Reset, Preamble, Start, Events, Knock, DryRun, ModernKnock, Keygen
// and Pubkey is a text/template rendered from a Model (daemon) or
// KnockData (client), with the functions `bin NAME` (the absolute path of a required program),
// `join LIST SEP` and `json VALUE`.
type Adapter struct {
	Name        string `toml:"name"`
	Kind        string `toml:"kind"` // "daemon" or "client"
	Description string `toml:"description"`
	// Requires names programs that must be installed; if one is missing
	// every case is skipped as "implementation not installed".
	Requires []string       `toml:"requires"`
	Files    []FileTemplate `toml:"file"`

	// Daemon adapters.
	Reset        [][]string `toml:"reset"`    // server ns: before preamble and after stop
	Preamble     [][]string `toml:"preamble"` // server ns: the admin's firewall
	Start        []string   `toml:"start"`    // server ns: the daemon, in the foreground
	ReadyLog     string     `toml:"ready_log"`
	ReadyDelay   Duration   `toml:"ready_delay"`
	ReadyTimeout Duration   `toml:"ready_timeout"`
	StopSignal   string     `toml:"stop_signal"`
	// ReloadSignal, if set, makes the daemon re-read its files (0.81:
	// SIGHUP); without it the reload cases are unsupported. ReloadLog, if
	// set, is a log line that says a reload finished, ok or not.
	ReloadSignal string   `toml:"reload_signal"`
	ReloadLog    string   `toml:"reload_log"`
	ReloadDelay  Duration `toml:"reload_delay"`
	// Events, if set, is where the daemon writes its event stream: a file
	// (a template, usually "{{.EventsFile}}") or "-" for its standard
	// output, one JSON object per line with at least "event". With it,
	// readiness and finished reloads are read from events named
	// ReadyEvent (default "ready") and ReloadEvent (default "reload")
	// instead of from log lines.
	Events      string `toml:"events"`
	ReadyEvent  string `toml:"ready_event"`
	ReloadEvent string `toml:"reload_event"`

	// Client adapters.
	Knock  []string `toml:"knock"`   // client ns: send one knock
	DryRun []string `toml:"dry_run"` // print the payload for a fixed tag (optional)
	// The modern protocol (optional; without them the modern client
	// cases are unsupported): ModernKnock sends one modern knock to a
	// host with a server record, Keygen writes a new private key to
	// {{.KeyFile}} and prints its public key, Pubkey prints the public
	// key of {{.KeyFile}}.
	ModernKnock []string `toml:"modern_knock"`
	Keygen      []string `toml:"keygen"`
	Pubkey      []string `toml:"pubkey"`

	// DoormandEvents says the event stream (Events) is doormand's, with
	// its knock, door, firewall, reload and counters events and their
	// fields, so that doorman-sim's checks that read them can run.
	DoormandEvents bool `toml:"doormand_events"`

	// Unsupported maps case IDs to the reason the implementation does not
	// support them (a documented gap, not a failure). A key ending in "*"
	// names every case whose ID starts with what comes before it ("12.*":
	// the modern protocol).
	Unsupported map[string]string `toml:"unsupported"`

	// SearchPath lists directories searched before $PATH for Requires.
	SearchPath []string `toml:"-"`
	// Source is the file the adapter was read from.
	Source string `toml:"-"`
}

// Duration is a Go duration in TOML ("100ms", "1.5s").
type Duration struct{ time.Duration }

// UnmarshalText parses a Go duration.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

// LoadAdapter reads an adapter file.
func LoadAdapter(path string) (*Adapter, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("adapter: %w", err)
	}
	return ParseAdapter(path, b)
}

// ParseAdapter parses adapter TOML; name is used in errors.
func ParseAdapter(name string, data []byte) (*Adapter, error) {
	var a Adapter
	md, err := toml.Decode(string(data), &a)
	if err != nil {
		return nil, fmt.Errorf("adapter %s: %w", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		return nil, fmt.Errorf("adapter %s: unknown keys %v", name, und)
	}
	a.Source = name
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", name, err)
	}
	for _, f := range a.Files {
		if f.Name == "" || filepath.IsAbs(f.Name) || strings.Contains(f.Name, "..") {
			return nil, fmt.Errorf("adapter %s: file name %q must be a relative path inside the work directory", name, f.Name)
		}
		if _, err := f.fileMode(); err != nil {
			return nil, fmt.Errorf("adapter %s: %w", name, err)
		}
	}
	return &a, nil
}

func (a *Adapter) validate() error {
	switch a.Kind {
	case KindDaemon:
		if len(a.Start) == 0 {
			return errors.New("daemon adapter needs start")
		}
		for key, set := range map[string]bool{"knock": len(a.Knock) > 0, "dry_run": len(a.DryRun) > 0,
			"modern_knock": len(a.ModernKnock) > 0, "keygen": len(a.Keygen) > 0, "pubkey": len(a.Pubkey) > 0} {
			if set {
				return fmt.Errorf("%s is a client key; this is a daemon adapter", key)
			}
		}
		if _, err := ParseSignal(a.StopSignal); err != nil {
			return fmt.Errorf("stop_signal: %w", err)
		}
		if a.ReloadSignal != "" {
			if _, err := ParseSignal(a.ReloadSignal); err != nil {
				return fmt.Errorf("reload_signal: %w", err)
			}
		}
		for key, re := range map[string]string{"ready_log": a.ReadyLog, "reload_log": a.ReloadLog} {
			if _, err := regexp.Compile(re); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
		}
		if a.Events != "" {
			// One source of truth for readiness: a log regexp could match
			// before the event it is meant to stand for.
			if a.ReadyLog != "" || a.ReloadLog != "" {
				return errors.New("events replaces ready_log and reload_log: set one or the other")
			}
			if a.ReadyEvent == "" {
				a.ReadyEvent = "ready"
			}
			if a.ReloadEvent == "" {
				a.ReloadEvent = "reload"
			}
		} else if a.ReadyEvent != "" || a.ReloadEvent != "" || a.DoormandEvents {
			return errors.New("ready_event, reload_event and doormand_events need events")
		}
	case KindClient:
		if len(a.Knock) == 0 {
			return errors.New("client adapter needs knock")
		}
		if (len(a.Keygen) > 0) != (len(a.Pubkey) > 0) {
			return errors.New("keygen and pubkey go together: set both or neither")
		}
		for key, set := range map[string]bool{"start": len(a.Start) > 0, "preamble": len(a.Preamble) > 0,
			"reset": len(a.Reset) > 0, "events": a.Events != "", "ready_log": a.ReadyLog != "", "doormand_events": a.DoormandEvents} {
			if set {
				return fmt.Errorf("%s is a daemon key; this is a client adapter", key)
			}
		}
	default:
		return fmt.Errorf("kind %q: must be daemon or client", a.Kind)
	}
	return nil
}

// ParseSignal reads a signal name as adapters write it: SIGTERM, SIGINT,
// SIGQUIT, SIGKILL, SIGHUP, SIGUSR1 or SIGUSR2, the SIG optional; "" is
// SIGTERM.
func ParseSignal(s string) (syscall.Signal, error) {
	switch strings.ToUpper(strings.TrimPrefix(strings.ToUpper(s), "SIG")) {
	case "", "TERM":
		return syscall.SIGTERM, nil
	case "INT":
		return syscall.SIGINT, nil
	case "QUIT":
		return syscall.SIGQUIT, nil
	case "KILL":
		return syscall.SIGKILL, nil
	case "HUP":
		return syscall.SIGHUP, nil
	case "USR1":
		return syscall.SIGUSR1, nil
	case "USR2":
		return syscall.SIGUSR2, nil
	}
	return 0, fmt.Errorf("signal %q: must be one of SIGTERM, SIGINT, SIGQUIT, SIGKILL, SIGHUP, SIGUSR1, SIGUSR2", s)
}

// LookPath finds a required program in SearchPath, then $PATH, and
// returns its absolute path: commands run in a work directory, so a
// relative one would name another file there.
func (a *Adapter) LookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		if _, err := os.Stat(name); err != nil {
			return "", err
		}
		return filepath.Abs(name)
	}
	for _, d := range a.SearchPath {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return filepath.Abs(p)
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", err
	}
	return filepath.Abs(p)
}

// UnsupportedReason returns the reason the adapter gives for not supporting
// case id: its own entry, else the longest "prefix*" entry that matches.
func (a *Adapter) UnsupportedReason(id string) (string, bool) {
	if why, ok := a.Unsupported[id]; ok {
		return why, true
	}
	best, why := -1, ""
	for k, v := range a.Unsupported {
		if p, ok := strings.CutSuffix(k, "*"); ok && strings.HasPrefix(id, p) && len(p) > best {
			best, why = len(p), v
		}
	}
	return why, best >= 0
}

// Missing returns the first required program that is not installed, or "".
func (a *Adapter) Missing() string {
	for _, r := range a.Requires {
		if _, err := a.LookPath(r); err != nil {
			return r
		}
	}
	return ""
}

// Render renders the template src (named name in errors) from data, a
// Model or a client's data. Failures are setup errors (ErrSetup).
func (a *Adapter) Render(name, src string, data any) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(template.FuncMap{
		"bin":  func(n string) (string, error) { return a.LookPath(n) },
		"join": func(xs []string, sep string) string { return strings.Join(xs, sep) },
		"json": func(v any) (string, error) {
			b, err := json.Marshal(v)
			return string(b), err
		},
	}).Parse(src)
	if err != nil {
		return "", setupErr(fmt.Errorf("adapter %s: template %s: %w", a.Name, name, err))
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", setupErr(fmt.Errorf("adapter %s: template %s: %w", a.Name, name, err))
	}
	return b.String(), nil
}

// RenderArgv renders each element of argv from data; what names the
// command in errors.
func (a *Adapter) RenderArgv(what string, argv []string, data any) ([]string, error) {
	out := make([]string, len(argv))
	for i, s := range argv {
		v, err := a.Render(what+"["+strconv.Itoa(i)+"]", s, data)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// fileMode returns the file's mode (default 0600).
func (f FileTemplate) fileMode() (os.FileMode, error) {
	if f.Mode == "" {
		return 0o600, nil
	}
	m, err := strconv.ParseUint(f.Mode, 8, 32)
	if err != nil || m > 0o777 {
		return 0, fmt.Errorf("file %s: mode %q: want an octal permission such as \"0600\"", f.Name, f.Mode)
	}
	return os.FileMode(m), nil
}

// WriteFiles renders the adapter's files into dir from data. Every
// failure is a setup error.
func (a *Adapter) WriteFiles(dir string, data any) error {
	for _, f := range a.Files {
		body, err := a.Render(f.Name, f.Template, data)
		if err != nil {
			return err
		}
		mode, err := f.fileMode()
		if err != nil {
			return setupErr(fmt.Errorf("adapter %s: %w", a.Name, err))
		}
		p := filepath.Join(dir, f.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return setupErr(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			return setupErr(err)
		}
		// WriteFile applies the umask to a new file and keeps an old
		// file's mode; the adapter's mode is what counts.
		if err := os.Chmod(p, mode); err != nil {
			return setupErr(err)
		}
	}
	return nil
}
