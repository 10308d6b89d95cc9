//go:build linux

package conformance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/doorman-project/doorman/conformance/adapter"
)

// runCommands renders and runs a list of commands in the server namespace.
// Their failures are setup errors: they are the adapter's, not the
// implementation's.
func (e *Env) runCommands(what string, cmds [][]string) error {
	return e.Impl.RunCommands(e.ctx, e.Topo.Server.NS, what, cmds, e.model)
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
		if err := a.WriteFiles(e.model.WorkDir, e.model); err != nil {
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
	e.starts++
	d, err := a.Launch(e.ctx, e.Topo.Server.NS, e.model, filepath.Join(e.ArtifactDir, fmt.Sprintf("daemon-%d.log", e.starts)))
	if err != nil {
		return err
	}
	e.daemon = d
	return nil
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

// StopDaemon stops the daemon with the adapter's stop signal and waits for
// it (SIGKILL after 10 s).
func (e *Env) StopDaemon() error {
	d := e.daemon
	if d == nil {
		return nil
	}
	e.daemon = nil
	return d.Stop()
}

// KillDaemon kills the daemon's process group with SIGKILL (a crash).
func (e *Env) KillDaemon() error {
	d := e.daemon
	if d == nil {
		return nil
	}
	e.daemon = nil
	return d.Kill()
}

// ReloadDaemon writes the adapter's files from m (which stays the model in
// force for the case) and sends the reload signal; it returns when the
// daemon reported the reload (a ReloadEvent, or a log line matching
// ReloadLog, counting from before the signal) or after ReloadDelay
// (default 500 ms). ErrUnsupported without a reload signal.
func (e *Env) ReloadDaemon(m Model) error {
	if e.Impl.ReloadSignal == "" {
		return fmt.Errorf("%w: %w", ErrUnsupported, adapter.ErrNoReload)
	}
	if e.daemon == nil {
		return errors.New("reload: daemon not running")
	}
	if err := writeKeyFile(m); err != nil {
		return err
	}
	e.model = m
	return e.daemon.Reload(m)
}

// DaemonAlive reports whether the daemon is still running.
func (e *Env) DaemonAlive() bool {
	return e.daemon != nil && e.daemon.Alive()
}

// DaemonLog returns what the current daemon run has logged.
func (e *Env) DaemonLog() string {
	if e.daemon == nil {
		return ""
	}
	return e.daemon.Log()
}
