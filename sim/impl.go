//go:build linux

package sim

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/doorman-project/doorman/conformance/adapter"
	"github.com/doorman-project/doorman/internal/doormandtest"
	"github.com/doorman-project/doorman/internal/netsim"
)

// Timing of the adapter model: the built doormand's (doormandtest.Config
// with scenWaitfor).
const (
	implConnDelay1 = 500000 // microseconds
	implConnDelay2 = 1      // seconds
	implReplayCap  = 1000
)

// implDaemon is an implementation run through its adapter
// (conformance/README.md, "The adapter"): the adapter's reset and
// preamble set up the admin firewall, its files are rendered from a Model
// of the scenario, and its start command runs in the server.
type implDaemon struct {
	a      *adapter.Adapter
	ctx    context.Context
	server *netsim.Host
	model  adapter.Model
	proc   *adapter.Proc
	starts int
}

// startImpl starts the adapter's implementation in server watching
// ifname, with guests, after the adapter's reset and preamble.
func startImpl(ctx context.Context, r *Run, server *netsim.Host, ifname string, guests []adapter.Guest) (*doorman, error) {
	a := r.impl
	m := adapter.Model{
		Guests:         guests,
		KnockPort:      scenKnockPort,
		WaitFor:        int(scenWaitfor / time.Second),
		ConnDelay1:     implConnDelay1,
		ConnDelay2:     implConnDelay2,
		ReplayCapacity: implReplayCap,
		ReplayFile:     filepath.Join(r.Dir, "replay"),
		EventsFile:     filepath.Join(r.Dir, "events.jsonl"),
		Interface:      ifname,
		ServerAddr:     server.Addr4().String(),
		WorkDir:        r.Dir,
		// The scenarios knock classic through adapters: no modern guest,
		// no key file (PrivateKeyFile is never written), the spec's
		// defaults for the modern settings an adapter renders.
		PrivateKeyFile: filepath.Join(r.Dir, "doorman.key"),
		ModernWindow:   60,
		ModernRate:     20,
		ModernBurst:    5,
	}
	if a6 := server.Addr6(); a6.IsValid() {
		m.ServerAddr6 = a6.String()
	}
	ns := server.NS()
	if err := a.RunCommands(ctx, ns, "reset", a.Reset, m); err != nil {
		return nil, err
	}
	if err := a.WriteFiles(m.WorkDir, m); err != nil {
		return nil, err
	}
	if err := a.RunCommands(ctx, ns, "preamble", a.Preamble, m); err != nil {
		return nil, err
	}
	d := &implDaemon{a: a, ctx: ctx, server: server, model: m}
	if err := d.Restart(ctx); err != nil {
		return nil, err
	}
	r.onCleanup(func() { _ = d.Stop() })
	r.Step("started %s in %s (%s)", a.Name, server.Name(), a.Source)
	dm := &doorman{dut: d, impl: a, r: r, server: server}
	if a.DoormandEvents {
		p, err := a.EventsPath(m)
		if err != nil {
			return nil, err
		}
		if p != "" && p != "-" {
			dm.events = doormandtest.NewStream(p)
		} else {
			r.Step("adapter %s: doormand_events on standard output is not read; event checks are unsupported", a.Name)
		}
	}
	return dm, nil
}

// Restart starts the implementation, leaving the server's firewall as it
// is (a restart after a stop or a crash). ctx bounds the wait for
// readiness; the daemon's later waits (reloads) are bounded by the
// scenario's context.
func (d *implDaemon) Restart(ctx context.Context) error {
	if d.Alive() {
		return errors.New("the daemon under test is running")
	}
	d.starts++
	p, err := d.a.Launch(d.ctx, d.server.NS(), d.model, filepath.Join(d.model.WorkDir, fmt.Sprintf("daemon-%d.log", d.starts)))
	if err != nil {
		return fmt.Errorf("%s: %w", d.a.Name, err)
	}
	d.proc = p
	return nil
}

// Stop stops the daemon with the adapter's stop signal.
func (d *implDaemon) Stop() error {
	if d.proc == nil {
		return nil
	}
	return d.proc.Stop()
}

// Kill kills the daemon's process group with SIGKILL.
func (d *implDaemon) Kill() error {
	if d.proc == nil {
		return nil
	}
	return d.proc.Kill()
}

// SetGuests renders the adapter's files with guests.
func (d *implDaemon) SetGuests(guests []adapter.Guest) error {
	d.model.Guests = guests
	return d.a.WriteFiles(d.model.WorkDir, d.model)
}

// Reload sends the adapter's reload signal and waits as it says; within
// is the adapter's to choose (5 s with events or reload_log).
func (d *implDaemon) Reload(time.Duration) error {
	if d.proc == nil {
		return errors.New("the daemon under test is not running")
	}
	if err := d.proc.Reload(d.model); err != nil {
		if errors.Is(err, adapter.ErrNoReload) {
			return fmt.Errorf("%w: %s: %w", ErrUnsupported, d.a.Name, err)
		}
		return err
	}
	return nil
}

// Alive reports whether the daemon runs.
func (d *implDaemon) Alive() bool { return d.proc != nil && d.proc.Alive() }

// Log returns what the current run logged.
func (d *implDaemon) Log() string {
	if d.proc == nil {
		return ""
	}
	return d.proc.Log()
}
