package service

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"strings"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/config"
)

// Severity says whether a finding stops doormand.
type Severity int

const (
	// Warning: doormand runs, but something is probably not what the
	// administrator meant (an unknown keyword, a weak secret, a ruleset
	// that drops what doors let in).
	Warning Severity = iota
	// Fatal: doormand would not start (or a reload would be refused).
	Fatal
)

func (s Severity) String() string {
	if s == Fatal {
		return "error"
	}
	return "warning"
}

// Finding is one thing --check found: where ("file:line", or what part of
// the system) and what, with the fix where there is one.
type Finding struct {
	Severity Severity
	Where    string
	Msg      string
}

// String formats the finding as "where: severity: msg".
func (f Finding) String() string { return f.Where + ": " + f.Severity.String() + ": " + f.Msg }

// Findings returns what the configuration, the guest list and the host
// need the administrator to look at, beyond the errors Load returns: the
// files' warnings, an interface that does not exist, a missing firewall
// program, a state file doormand could not use, and chains of the host's
// firewall that would drop what doors let in. It changes nothing.
func (s *Service) Findings() []Finding {
	var out []Finding
	for _, w := range s.warns {
		where, msg := splitWarning(w)
		out = append(out, Finding{Severity: Warning, Where: where, Msg: msg})
	}
	add := func(sev Severity, format string, args ...any) {
		out = append(out, Finding{Severity: sev, Where: s.opts.ConfigPath, Msg: fmt.Sprintf(format, args...)})
	}
	c := s.cfg
	if c.Interface != capture.AnyInterface {
		if _, err := net.InterfaceByName(c.Interface); err != nil {
			add(Fatal, "interface %q: no such network device here (devices: %s)", c.Interface, deviceNames())
		}
	}
	if c.Capture == capture.ModeRaw && c.Interface == capture.AnyInterface {
		add(Fatal, `capture raw cannot capture on "any": its devices have different link headers; use capture network`)
	}
	if c.Firewall == config.FirewallScript {
		for _, sc := range []struct{ keyword, path string }{{"firewall-add", c.FirewallAdd}, {"firewall-del", c.FirewallDel}} {
			if fi, err := os.Stat(sc.path); err != nil {
				add(Fatal, "%s %s: %v", sc.keyword, sc.path, err)
			} else if fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
				add(Fatal, "%s %s: not an executable file", sc.keyword, sc.path)
			}
		}
	}
	if c.Firewall == config.FirewallIptables {
		if _, err := exec.LookPath("iptables"); err != nil {
			add(Fatal, "firewall iptables: the iptables program is not installed")
		}
	}
	for _, p := range s.statePaths() {
		if err := config.CheckStatePath(p.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			add(Fatal, "%s: %v", p.keyword, err)
		}
	}
	bs, err := s.Blockers()
	if err != nil {
		out = append(out, Finding{Severity: Warning, Where: "firewall", Msg: fmt.Sprintf("cannot inspect the host's ruleset: %v", err)})
	}
	for _, b := range bs {
		out = append(out, Finding{Severity: Warning, Where: b.Where,
			Msg: b.Why + ": doors open but their connections never arrive; add: " + b.Fix})
	}
	return out
}

// statePaths are the files doormand writes, with their keywords.
func (s *Service) statePaths() []struct{ keyword, path string } {
	c := s.cfg
	ps := []struct{ keyword, path string }{{"hash-archive", c.HashArchive}, {"hash-archive (stamps)", c.StampFile()}}
	if pid := s.pidPath(); pid != "" {
		ps = append(ps, struct{ keyword, path string }{"pidfile", pid})
	}
	if c.LogFile != "" && c.LogFile != "-" && c.LogFile != "stderr" {
		ps = append(ps, struct{ keyword, path string }{"logfile", c.LogFile})
	}
	return ps
}

// pidPath is the pid file in force: -p, else pidfile.
func (s *Service) pidPath() string {
	if s.opts.PidFile != "" {
		return s.opts.PidFile
	}
	return s.cfg.PidFile
}

// splitWarning splits a config warning into where ("file:line") and what.
func splitWarning(w config.Warning) (where, msg string) {
	where = w.File
	if w.Line > 0 {
		where = fmt.Sprintf("%s:%d", w.File, w.Line)
	}
	return where, strings.TrimPrefix(w.String(), where+": ")
}

// deviceNames lists the network devices of this namespace, for a message.
func deviceNames() string {
	ifs, err := net.Interfaces()
	if err != nil || len(ifs) == 0 {
		return "none found"
	}
	names := make([]string, len(ifs))
	for i, ifc := range ifs {
		names[i] = ifc.Name
	}
	return strings.Join(names, ", ")
}
