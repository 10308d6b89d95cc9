package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/ratelimit"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// Firewall is what the engine needs of a firewall backend
// (daemon/firewall's NFTables, IPTables, Script and Fake): doors whose state
// it sets, and the kernel's reports of the SYNs that claim them.
type Firewall interface {
	// Start removes what an earlier run left behind and gets ready;
	// reports arrive through n from then on.
	Start(ctx context.Context, n firewall.Notify) error
	// Apply brings each door to its State, returning one error per door.
	Apply(ctx context.Context, doors []firewall.Door) []error
	// Close removes every door and everything the backend added.
	Close(ctx context.Context) error
}

// PacketSource delivers candidate packets (daemon/capture.Conn).
type PacketSource interface {
	Read(p *capture.Packet) error
	Close() error
}

// ReplayStore is the persistent replay decision (daemon/replay.Store).
type ReplayStore interface {
	Admit(mac [protocol.MACSize]byte, fp replay.Fingerprint) (time.Time, error)
}

// StampStore is the modern protocol's durable freshness decision
// (daemon/replay.Stamps, MODERN-12.17): Advance accepts ts as the guest's
// last timestamp if it is later than the last one, durably before it
// returns, and fails with replay.ErrStale otherwise.
type StampStore interface {
	Advance(guest [32]byte, ts uint64) (last uint64, err error)
}

// Settings are the parts of doormand.cf the engine acts on. They may change
// on reload; a door keeps the settings it started with (CLASSIC-6.11).
type Settings struct {
	Interface string        // for the firewall scripts ("any" = no interface)
	WaitFor   time.Duration // an armed door's life without a SYN (CLASSIC-6.3)
	Delay1    time.Duration // handshake wait after the SYN (CLASSIC-6.5)
	Delay2    time.Duration // connection-ended check interval (CLASSIC-6.6)
	// MaxDoors bounds the doors not closed (queued ones included); a knock
	// that would exceed it is refused before its digest is used. 0 = no
	// bound of the engine's own.
	MaxDoors int

	// ClassicOff refuses every classic knock ("classic off",
	// MODERN-12.20/3); the zero value accepts them.
	ClassicOff bool
	// ModernWindow is the time window of modern knocks (MODERN-12.14);
	// 0 = protocol.DefaultModernWindow.
	ModernWindow time.Duration
	// ModernRate and ModernBurst bound per source the modern knocks that
	// may cost public-key work (MODERN-12.12); 0 = the defaults of
	// daemon/ratelimit. A change on reload starts every source afresh.
	ModernRate, ModernBurst int
}

// Guests is an immutable guest index, swapped whole on reload.
type Guests struct {
	byName map[string]*guestEntry
	// byKey finds modern guests by their public key, the only thing
	// that identifies one (MODERN-12.13).
	byKey map[protocol.PublicKey]*guestEntry
}

type guestEntry struct {
	protocol.Guest
	fp replay.Fingerprint
}

// NewGuests indexes a guest list.
func NewGuests(list []protocol.Guest) *Guests {
	g := &Guests{byName: make(map[string]*guestEntry, len(list)), byKey: map[protocol.PublicKey]*guestEntry{}}
	for _, x := range list {
		e := &guestEntry{Guest: x, fp: replay.GuestFingerprint(x.Name, x.Secret)}
		g.byName[x.Name] = e
		if x.IsModern() {
			g.byKey[x.Key] = e
		}
	}
	return g
}

// Len returns the number of guests.
func (g *Guests) Len() int { return len(g.byName) }

// Modern returns the number of modern guests (those with a public key).
func (g *Guests) Modern() int { return len(g.byKey) }

// Fingerprints reports whether fp belongs to a current guest (for pruning).
func (g *Guests) Fingerprints() func(replay.Fingerprint) bool {
	set := map[replay.Fingerprint]bool{}
	for _, e := range g.byName {
		set[e.fp] = true
	}
	return func(fp replay.Fingerprint) bool { return set[fp] }
}

// Options configure an Engine.
type Options struct {
	Settings Settings
	Guests   *Guests
	Firewall Firewall
	// Source and Replay are the capture and the replay store. When Open is
	// set they may be nil: Run calls Open once the firewall has started
	// (and removed an earlier run's leftovers, CLASSIC-6.9), so that
	// nothing is opened before that, and uses what it returns.
	Source PacketSource
	Replay ReplayStore
	Open   func(ctx context.Context) (PacketSource, ReplayStore, error)
	// Opener opens modern knocks with the doorman's private key; nil =
	// no key, and modern knocks are counted as ReasonModernNoKey.
	// SetOpener changes it.
	Opener *protocol.Opener
	// Stamps is the modern protocol's freshness store. When OpenStamps
	// is set Run calls it right after Open and uses what it returns;
	// Stamps may then be nil. An engine with neither refuses every
	// modern knock that gets as far as the store.
	Stamps     StampStore
	OpenStamps func(ctx context.Context) (StampStore, error)
	// VerifyModern runs the checks after the guest lookup of a modern
	// knock (MODERN-12.14 to MODERN-12.16); nil = protocol.VerifyModern.
	// It exists for the conformance suite's mutants
	// (conformance/testdata/mutants), which plant defects through it: it
	// may change *k, and the door follows what it leaves there (the
	// stated source and source port).
	VerifyModern func(k *protocol.ModernKnock, g *protocol.Guest, src netip.Addr, now time.Time, window time.Duration) (time.Duration, error)

	Conns  ConnTracker // nil = never established (doors close after Delay1)
	Logger *slog.Logger
	Now    func() time.Time // nil = time.Now
	// StatsEvery is the period of the counters log record; 0 = off.
	StatsEvery time.Duration
	// Events, if set, receives every Event (tests, the event stream). It
	// is called from the engine's routines and must not block for long.
	Events func(Event)
}

// Engine is a running doorman.
type Engine struct {
	opts     Options
	log      *slog.Logger
	now      func() time.Time
	settings atomic.Pointer[Settings]
	guests   atomic.Pointer[Guests]
	counters Counters
	limit    *limiter

	// The modern protocol: the key in force, the per-source budget of
	// public-key work, and the queue to the routines that spend it.
	opener  atomic.Pointer[protocol.Opener]
	sources atomic.Pointer[ratelimit.Limiter]
	modernQ chan modernJob

	newDoors  chan doorRequest
	claims    chan firewall.Claim
	loop      *doorLoop    // while Run runs; nil = hand every door to newDoors
	openDoors atomic.Int64 // doors not closed, as the door loop last counted
}

// Queue sizes between the routines. A full queue makes its producer wait:
// knocks then wait in the capture's buffer, claims in the kernel's.
const (
	newDoorQueue = 1024
	claimQueue   = 4096
)

// New returns an engine; Run starts it.
func New(opts Options) *Engine {
	e := &Engine{opts: opts, log: opts.Logger, now: opts.Now,
		newDoors: make(chan doorRequest, newDoorQueue), claims: make(chan firewall.Claim, claimQueue),
		modernQ: make(chan modernJob, modernQueue)}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.now == nil {
		e.now = time.Now
	}
	e.limit = newLimiter(e.now)
	s := opts.Settings
	e.settings.Store(&s)
	if opts.Guests == nil {
		opts.Guests = NewGuests(nil)
	}
	e.guests.Store(opts.Guests)
	e.opener.Store(opts.Opener)
	e.sources.Store(e.newSourceLimiter(&s))
	return e
}

// Counters returns the engine's counters.
func (e *Engine) Counters() *Counters { return &e.counters }

// Guests returns the guest list in force.
func (e *Engine) Guests() *Guests { return e.guests.Load() }

// Settings returns the settings in force.
func (e *Engine) Settings() Settings { return *e.settings.Load() }

// Reload swaps in new settings and guests atomically; open doors keep what
// they started with (CLASSIC-6.11).
func (e *Engine) Reload(s Settings, g *Guests) {
	if old := e.settings.Swap(&s); old.ModernRate != s.ModernRate || old.ModernBurst != s.ModernBurst {
		e.sources.Store(e.newSourceLimiter(&s))
	}
	e.guests.Store(g)
}

// notify is how the firewall reports to the engine.
func (e *Engine) notify() firewall.Notify {
	return firewall.Notify{
		Claim: func(c firewall.Claim) { e.claims <- c },
		Fault: e.firewallFault,
	}
}

// firewallFault logs and reports what the firewall found or repaired.
func (e *Engine) firewallFault(f firewall.Fault) {
	ev := Event{Time: e.now(), Kind: EventFirewall, Op: f.Op, Repaired: f.Repaired}
	if f.Err != nil {
		ev.Err = f.Err.Error()
	}
	switch {
	case f.Repaired:
		e.log.Warn("firewall repaired", "op", f.Op, "what", ev.Err)
	default:
		e.counters.add(ReasonFirewall)
		if ok, suppressed := e.limit.allow(ReasonFirewall); ok {
			e.log.Error("firewall fault", "op", f.Op, "err", f.Err, "suppressed_since_last", suppressed)
		}
	}
	e.emit(ev)
}

// emit reports ev to the Events callback.
func (e *Engine) emit(ev Event) {
	if e.opts.Events == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = e.now()
	}
	e.opts.Events(ev)
}

// Run serves until ctx ends, in this order: start the firewall, which
// first removes a crashed run's leftovers (CLASSIC-6.9); open the source
// and the replay store (Options.Open), then the stamp store
// (Options.OpenStamps); report ready; serve knocks and doors. On the way
// out it stops reading, closes every door, has the firewall remove all it
// added (CLASSIC-6.8) and reports stopped. Every routine it starts has
// ended when it returns. It closes the packet source.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.opts.Firewall.Start(ctx, e.notify()); err != nil {
		if e.opts.Source != nil {
			e.opts.Source.Close()
		}
		return fmt.Errorf("firewall start: %w", err)
	}
	if e.opts.Open != nil {
		src, store, err := e.opts.Open(ctx)
		if err != nil {
			return errors.Join(err, e.closeFirewall(ctx))
		}
		e.opts.Source, e.opts.Replay = src, store
	}

	if e.opts.OpenStamps != nil {
		st, err := e.opts.OpenStamps(ctx)
		if err != nil {
			e.opts.Source.Close()
			return errors.Join(err, e.closeFirewall(ctx))
		}
		e.opts.Stamps = st
	}

	var wg sync.WaitGroup
	stopDoors := make(chan struct{})
	wg.Add(1)
	e.loop = newDoorLoop(e)
	go func() { defer wg.Done(); e.routineDoors(e.loop, stopDoors) }()
	stopModern := make(chan struct{})
	var modern sync.WaitGroup
	for range modernWorkers() {
		modern.Add(1)
		go func() { defer modern.Done(); e.routineModern(stopModern) }()
	}
	statsCtx, stopStats := context.WithCancel(context.WithoutCancel(ctx))
	wg.Add(1)
	go func() { defer wg.Done(); e.routineStats(statsCtx, e.opts.StatsEvery) }()
	recvErr := make(chan error, 1)
	var recv sync.WaitGroup
	recv.Add(1)
	go func() { defer recv.Done(); recvErr <- e.RoutineReceive() }()

	e.emit(Event{Kind: EventReady})
	var err error
	select {
	case <-ctx.Done():
	case err = <-recvErr:
		if err != nil {
			err = fmt.Errorf("capture: %w", err)
		}
	}
	// Stop reading first, so no knock opens a door after the doors close;
	// modern knocks still queued are dropped unopened.
	e.opts.Source.Close()
	recv.Wait()
	close(stopModern)
	modern.Wait()
	close(stopDoors)
	stopStats()
	wg.Wait()
	err = errors.Join(err, e.closeFirewall(ctx))
	e.emit(Event{Kind: EventCounters, Counters: e.counters.Snapshot()})
	e.log.Info("stopped", "packets", &e.counters)
	e.emit(Event{Kind: EventStopped})
	return err
}

// closeFirewall closes the firewall backend, which removes every door and
// all it added, bounded in time even though ctx may be done.
func (e *Engine) closeFirewall(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := e.opts.Firewall.Close(cctx); err != nil {
		e.log.Error("firewall cleanup failed: rules may remain", "err", err)
		return fmt.Errorf("firewall cleanup: %w", err)
	}
	return nil
}

// ShutdownTimeout bounds how long the firewall backend's Close may take at
// shutdown.
const ShutdownTimeout = 30 * time.Second

// OpenDoors returns the number of doors not yet closed.
func (e *Engine) OpenDoors() int { return int(e.openDoors.Load()) }
