package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/doorman-project/doorman/daemon/capture"
	"github.com/doorman-project/doorman/daemon/firewall"
	"github.com/doorman-project/doorman/daemon/replay"
	"github.com/doorman-project/doorman/protocol"
)

// Firewall is what the engine needs of a firewall backend
// (daemon/firewall's NFTables, IPTables, Script and Fake).
type Firewall interface {
	Start(ctx context.Context) error
	Add(ctx context.Context, r firewall.Rule) error
	Delete(ctx context.Context, r firewall.Rule) error
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

// Settings are the parts of doormand.cf the engine acts on. They may change
// on reload; a door keeps the settings it started with (CLASSIC-6.11).
type Settings struct {
	Interface string        // for firewall rules ("any" = no interface match)
	WaitFor   time.Duration // broad rule lifetime without a SYN (CLASSIC-6.3)
	Delay1    time.Duration // handshake wait after the SYN (CLASSIC-6.5)
	Delay2    time.Duration // connection-ended check interval (CLASSIC-6.6)
	// SYNFromCapture says the packet source delivers TCP SYNs. When false
	// (socket capture) a door finds its connection through Conns instead.
	SYNFromCapture bool
}

// Guests is an immutable guest index, swapped whole on reload.
type Guests struct {
	byName map[string]*guestEntry
}

type guestEntry struct {
	protocol.Guest
	fp replay.Fingerprint
}

// NewGuests indexes a guest list.
func NewGuests(list []protocol.Guest) *Guests {
	g := &Guests{byName: make(map[string]*guestEntry, len(list))}
	for _, x := range list {
		g.byName[x.Name] = &guestEntry{Guest: x, fp: replay.GuestFingerprint(x.Name, x.Secret)}
	}
	return g
}

// Len returns the number of guests.
func (g *Guests) Len() int { return len(g.byName) }

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
	Source   PacketSource
	Firewall Firewall
	Replay   ReplayStore
	Conns    ConnTracker // nil = never established (doors close after Delay1)
	Logger   *slog.Logger
	Now      func() time.Time // nil = time.Now
	// StatsEvery is the period of the counters log record; 0 = off.
	StatsEvery time.Duration
	// OnDoor, if set, is called on every door state change (tests, sim).
	OnDoor func(DoorEvent)
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

	mu      sync.Mutex
	doors   map[uint64]*door
	waiting map[doorKey][]*door // broad doors waiting for a SYN, oldest first
	nextID  uint64
	stuck   map[firewall.Rule]struct{} // rules whose removal failed, retried

	wg sync.WaitGroup
}

// New returns an engine; Run starts it.
func New(opts Options) *Engine {
	e := &Engine{opts: opts, log: opts.Logger, now: opts.Now,
		doors: map[uint64]*door{}, waiting: map[doorKey][]*door{}, stuck: map[firewall.Rule]struct{}{}}
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
	return e
}

// Counters returns the engine's counters.
func (e *Engine) Counters() *Counters { return &e.counters }

// Reload swaps in new settings and guests atomically; open doors keep what
// they started with (CLASSIC-6.11).
func (e *Engine) Reload(s Settings, g *Guests) {
	e.settings.Store(&s)
	e.guests.Store(g)
}

// Run prepares the firewall (removing a crashed run's leftovers first,
// CLASSIC-6.9), serves knocks until ctx ends, then closes every door and
// removes every rule (CLASSIC-6.8). It closes the packet source on return.
func (e *Engine) Run(ctx context.Context) error {
	if err := e.opts.Firewall.Start(ctx); err != nil {
		e.opts.Source.Close()
		return fmt.Errorf("firewall start: %w", err)
	}
	doorCtx, stopDoors := context.WithCancel(context.WithoutCancel(ctx))
	defer stopDoors()

	go e.routineStats(ctx, e.opts.StatsEvery)
	go e.routineRetry(ctx)

	recvErr := make(chan error, 1)
	go func() { recvErr <- e.RoutineReceive(doorCtx) }()

	var err error
	select {
	case <-ctx.Done():
	case err = <-recvErr:
		err = fmt.Errorf("capture: %w", err)
	}
	e.opts.Source.Close()
	stopDoors()
	e.wg.Wait()

	// Bounded cleanup, even though ctx is done.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	e.retryStuck(cctx)
	if cerr := e.opts.Firewall.Close(cctx); cerr != nil {
		e.log.Error("firewall cleanup failed: rules may remain", "err", cerr)
		err = errors.Join(err, cerr)
	}
	e.log.Info("stopped", "packets", &e.counters)
	return err
}

// RoutineReceive is the hot path: read, verify, dispatch. It returns when
// the source fails or is closed.
func (e *Engine) RoutineReceive(ctx context.Context) error {
	var p capture.Packet
	var k protocol.Knock
	for {
		if err := e.opts.Source.Read(&p); err != nil {
			if r, ok := dropReason(err); ok {
				e.counters.add(r)
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		e.handleKnock(ctx, &p, &k)
	}
}

// dropReason maps the capture's per-packet drop errors to counters; any
// other error is the source failing.
func dropReason(err error) (Reason, bool) {
	switch err {
	case capture.ErrTruncated:
		return ReasonTruncated, true
	case capture.ErrIPOptions:
		return ReasonIPOptions, true
	case capture.ErrFragment:
		return ReasonFragment, true
	case capture.ErrChecksum:
		return ReasonChecksum, true
	case capture.ErrMartian:
		return ReasonMartian, true
	case capture.ErrNotLocal:
		return ReasonNotLocal, true
	case capture.ErrNotCandidate:
		return ReasonNotCandidate, true
	}
	return 0, false
}

// handleKnock runs the checks of CLASSIC-4.1 steps 2-7 on one datagram.
func (e *Engine) handleKnock(ctx context.Context, p *capture.Packet, k *protocol.Knock) {
	switch protocol.Sniff(p.Payload) {
	case protocol.KindModern:
		e.counters.add(ReasonModern)
		return
	case protocol.KindUnknown:
		// Not a knock at all (a scan, a stray datagram): counted, logged
		// like any malformed knock since the port should see nothing else.
		e.reject(ReasonNotClassic, p, nil, "bad packet", slog.String("reason", protocol.ErrNotClassic.Reason),
			slog.String("head", headHex(p.Payload)))
		return
	}
	if err := protocol.ParseKnock(p.Payload, k); err != nil {
		var fe *protocol.FieldError
		errors.As(err, &fe)
		e.reject(ReasonMalformed, p, nil, "bad packet", slog.String("field", string(fe.Field)),
			slog.String("reason", fe.Reason), slog.String("head", headHex(p.Payload)))
		return
	}
	g := e.guests.Load().byName[string(k.Group())]
	if g == nil {
		e.reject(ReasonUnknownGuest, p, k, "unknown guest")
		return
	}
	switch err := protocol.Verify(k, &g.Guest, p.Src); err {
	case nil:
	case protocol.ErrPortNotAllowed:
		e.reject(ReasonPort, p, k, "guest not registered for port")
		return
	case protocol.ErrAddrNotAllowed:
		e.reject(ReasonAddress, p, k, "guest not registered for address")
		return
	default:
		e.reject(ReasonMAC, p, k, "incorrect secret")
		return
	}
	first, err := e.opts.Replay.Admit(k.MAC, g.fp)
	switch {
	case errors.Is(err, protocol.ErrReplay):
		e.reject(ReasonReplay, p, k, "PROBABLE REPLAY ATTEMPT", slog.Time("first_accepted", first))
		return
	case errors.Is(err, protocol.ErrReplayFull):
		e.counters.add(ReasonReplayFull)
		e.log.Error("knock refused: replay store full", "src", p.Src, "group", g.Name, "err", err)
		return
	case err != nil:
		e.counters.add(ReasonStoreError)
		e.log.Error("knock refused: replay store failed", "src", p.Src, "group", g.Name, "err", err)
		return
	}
	e.counters.add(ReasonAccepted)
	e.log.Log(ctx, LevelNotice, "knock accepted", "src", p.Src, "group", g.Name, "port", k.Port, "dst", p.Dst)
	e.openDoor(ctx, p.Src, p.Dst, k.Port, g.Name)
}

// LevelNotice is syslog's NOTICE, between Info and Warn.
const LevelNotice = slog.LevelInfo + 2

// reject counts a refused knock and logs it, rate-limited (CLASSIC-4.5).
func (e *Engine) reject(r Reason, p *capture.Packet, k *protocol.Knock, msg string, extra ...slog.Attr) {
	e.counters.add(r)
	ok, suppressed := e.limit.allow(r)
	if !ok {
		return
	}
	attrs := make([]slog.Attr, 0, 8)
	attrs = append(attrs, slog.String("reason", r.String()), slog.Any("src", p.Src))
	if k != nil {
		attrs = append(attrs, slog.String("group", k.GroupString()), slog.Int("port", int(k.Port)))
	}
	attrs = append(attrs, extra...)
	if suppressed > 0 {
		attrs = append(attrs, slog.Uint64("suppressed_since_last", suppressed))
	}
	e.log.LogAttrs(context.Background(), slog.LevelWarn, msg, attrs...)
}

func headHex(b []byte) string {
	if len(b) > 16 {
		b = b[:16]
	}
	return hex.EncodeToString(b)
}

// synPacket is a TCP SYN to a door's port. Capture no longer delivers
// SYNs; they are to come from the firewall (NFLOG).
type synPacket struct {
	src, dst     netip.Addr
	sport, dport uint16
	at           time.Time // when the kernel received it; zero when unknown
}

// handleSYN offers a SYN to every broad door waiting for one from that
// address to that port; each door checks with the kernel that the SYN got
// in and claims its source port (see confirmSYN and claim).
func (e *Engine) handleSYN(p synPacket) {
	key := doorKey{src: p.src, dst: p.dst, port: p.dport}
	e.mu.Lock()
	defer e.mu.Unlock()
	q := e.waiting[key]
	if len(q) == 0 {
		return
	}
	e.counters.add(ReasonSYN)
	for _, d := range q {
		select {
		case d.syn <- synEvent{port: p.sport, at: p.at}:
		default: // queue full: this door has plenty to look at
		}
	}
}

// routineRetry retries removing rules whose removal failed (CLASSIC-6.10).
func (e *Engine) routineRetry(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			e.retryStuck(ctx)
		}
	}
}

func (e *Engine) retryStuck(ctx context.Context) {
	e.mu.Lock()
	rules := make([]firewall.Rule, 0, len(e.stuck))
	for r := range e.stuck {
		rules = append(rules, r)
	}
	e.mu.Unlock()
	for _, r := range rules {
		if err := e.opts.Firewall.Delete(ctx, r); err != nil {
			e.log.Error("firewall rule still not removed", "rule", r.String(), "err", err)
			continue
		}
		e.log.Info("firewall rule removed after retry", "rule", r.String())
		e.mu.Lock()
		delete(e.stuck, r)
		e.mu.Unlock()
	}
}

// OpenDoors returns the number of doors not yet closed.
func (e *Engine) OpenDoors() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.doors)
}

// Doors returns a snapshot of the open doors.
func (e *Engine) Doors() []DoorInfo {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DoorInfo, 0, len(e.doors))
	for _, d := range e.doors {
		out = append(out, d.info())
	}
	return out
}

// doorKey identifies where a door's SYN comes from and goes to.
type doorKey struct {
	src, dst netip.Addr
	port     uint16
}
