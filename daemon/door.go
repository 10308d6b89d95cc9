package daemon

import (
	"container/heap"
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/doorman-project/doorman/daemon/config"
	"github.com/doorman-project/doorman/daemon/firewall"
)

// DoorState is where a door is in its lifecycle (spec section 6):
//
//	queued --key free--> armed --SYN claims it--> narrow --established--> open
//	                       |  ^                      |                      |
//	                       |  +------- re-arm -------+ (handshake never     |
//	                       |                           completed, time left)|
//	                       +-- waitfor --> closed <-- delay-1, no time left |
//	                                          ^---- connection ended -------+
//
// A door is queued while another door of the same client, address and port
// is armed or narrow: the kernel decides claims per key, so they take turns.
// The zero value is DoorClosed.
type DoorState uint8

// Door states.
const (
	DoorClosed DoorState = iota
	DoorQueued
	DoorArmed
	DoorNarrow
	DoorOpen
)

var doorStateNames = [...]string{"closed", "queued", "armed", "narrow", "open"}

func (s DoorState) String() string {
	if int(s) < len(doorStateNames) {
		return doorStateNames[s]
	}
	return "DoorState(" + strconv.Itoa(int(s)) + ")"
}

// Timing of the door loop.
const (
	// expiryGrace is how long after its waitfor the daemon closes an armed
	// door: the kernel forgets the door at waitfor itself, and a claim made
	// just before must still find its door.
	expiryGrace = 50 * time.Millisecond
	// handshakePoll is how often a narrow door looks for its connection.
	handshakePoll = 10 * time.Millisecond
	// retryFirst and retryMax bound the pauses between attempts to remove
	// a closed door that the firewall refused to remove (CLASSIC-6.10).
	retryFirst = time.Second
	retryMax   = time.Minute
	// completedPackets is the least number of packets a connection sends
	// through its door when its handshake completed: the SYN, the ACK, and
	// its data, FIN or RST.
	completedPackets = 3
)

// doorKey identifies where a door's SYN comes from and goes to.
type doorKey struct {
	src, dst netip.Addr
	port     uint16
}

// door is one door's state in the door loop, guarded by doorLoop.mu.
type door struct {
	id       uint64
	key      doorKey
	group    string
	iface    string
	pinPort  uint16 // the source port the knock named; 0 = any
	knocked  time.Time
	expires  time.Time // knocked + waitfor: an armed door's end
	settings Settings

	state     DoorState
	srcPort   uint16
	claimedAt time.Time
	sawConn   bool      // the kernel's table showed the connection since the claim
	nextCount time.Time // when to ask again for its packets while it is invisible
	countGap  time.Duration

	due     time.Time // the door's next timer; zero = none
	heapIdx int       // index in the timer heap, -1 = not in it
	retries time.Duration
}

// fw returns the door as the firewall should hold it in state s.
func (d *door) fw(s firewall.DoorState) firewall.Door {
	fd := firewall.Door{ID: d.id, Iface: d.iface, Src: d.key.src, Dst: d.key.dst, Port: d.key.port,
		SrcPort: d.pinPort, State: s, Expires: d.expires}
	if s == firewall.DoorClaimed || s == firewall.DoorNarrow {
		fd.SrcPort = d.srcPort
	}
	return fd
}

func (d *door) local() netip.AddrPort  { return netip.AddrPortFrom(d.key.dst, d.key.port) }
func (d *door) remote() netip.AddrPort { return netip.AddrPortFrom(d.key.src, d.srcPort) }

// doorRequest asks the door loop to open a door for an accepted knock.
type doorRequest struct {
	src, dst netip.Addr
	port     uint16
	pinPort  uint16
	group    string
	at       time.Time
}

// keyTurn holds whose turn it is for one key: the door that is armed or
// narrow, and those queued behind it.
type keyTurn struct {
	active *door
	queue  []*door
}

// doorLoop is the state of every door. routineDoors drives it; a routine
// that accepted a knock may arm the knock's door itself (requestDoor).
type doorLoop struct {
	e *Engine
	// kick wakes routineDoors when a door armed outside it needs its timer
	// earlier than timerAt.
	kick chan struct{}

	// mu guards what follows. routineDoors holds it while it handles what
	// woke it.
	mu      sync.Mutex
	doors   map[uint64]*door
	turns   map[doorKey]*keyTurn
	closing map[uint64]*door // closed doors the firewall has not let go of yet
	timers  doorHeap
	pending []change
	nextID  uint64
	timerAt time.Time // when routineDoors's timer fires next; zero until it runs
}

func newDoorLoop(e *Engine) *doorLoop {
	return &doorLoop{e: e, kick: make(chan struct{}, 1), doors: map[uint64]*door{}, turns: map[doorKey]*keyTurn{},
		closing: map[uint64]*door{}}
}

// change is one firewall state change waiting for the next Apply, and what
// to do with its outcome.
type change struct {
	d    *door
	want firewall.Door
	then func(error)
}

// routineDoors drives every door: new doors from the knock routines,
// claims from the firewall, and the doors' own timers. It batches the
// firewall changes of everything that happened at once into one Apply.
// When stop is closed it closes every door and returns.
func (e *Engine) routineDoors(l *doorLoop, stop <-chan struct{}) {
	// Doors may have been armed before this routine started.
	l.mu.Lock()
	due := l.nextDue()
	l.timerAt = time.Now().Add(due)
	l.mu.Unlock()
	timer := time.NewTimer(due)
	defer timer.Stop()
	for {
		select {
		case r := <-e.newDoors:
			l.mu.Lock()
			l.open(r)
			l.takeWaitingLocked()
		case c := <-e.claims:
			l.mu.Lock()
			l.claim(c)
			l.takeWaitingLocked()
		case <-timer.C:
			l.mu.Lock()
			l.fire(e.now())
		case <-l.kick:
			l.mu.Lock()
		case <-stop:
			l.mu.Lock()
			l.shutdown()
			l.mu.Unlock()
			return
		}
		l.flush()
		due = l.nextDue()
		l.timerAt = time.Now().Add(due)
		l.mu.Unlock()
		timer.Reset(due)
	}
}

// takeWaitingLocked takes the door requests and claims waiting, up to a
// batch, in the order they came.
func (l *doorLoop) takeWaitingLocked() {
	for range 256 {
		select {
		case r := <-l.e.newDoors:
			l.open(r)
		case c := <-l.e.claims:
			l.claim(c)
		default:
			return
		}
	}
}

// requestDoor opens the door of an accepted knock. more says whether
// other knocks are about to follow (the caller has more packets at hand).
//
// Handing a knock to routineDoors costs a thread wakeup: in the virtual
// machines measured, 20-50 µs at the median and several hundred at the
// 90th percentile, against a firewall commit of about 100 µs. So when
// routineDoors is idle and nothing else waits, the caller arms the door
// itself (in the same order: what waited goes first). When knocks come in
// a crowd or more follow, it hands them over instead: routineDoors then
// batches them into one commit while the caller verifies the next ones.
func (e *Engine) requestDoor(r doorRequest, more bool) {
	l := e.loop
	if l == nil || more || !l.mu.TryLock() {
		e.newDoors <- r
		return
	}
	l.takeWaitingLocked()
	l.open(r)
	l.flush()
	if len(l.timers) > 0 && !l.timerAt.IsZero() && l.timers[0].due.Before(l.timerAt) {
		select {
		case l.kick <- struct{}{}:
		default:
		}
	}
	l.mu.Unlock()
}

// nextDue returns how long until the earliest door timer.
func (l *doorLoop) nextDue() time.Duration {
	if len(l.timers) == 0 {
		return time.Hour
	}
	return max(time.Until(l.timers[0].due), 0)
}

// schedule sets d's timer to at.
func (l *doorLoop) schedule(d *door, at time.Time) {
	d.due = at
	if d.heapIdx >= 0 {
		heap.Fix(&l.timers, d.heapIdx)
	} else {
		heap.Push(&l.timers, d)
	}
}

func (l *doorLoop) unschedule(d *door) {
	if d.heapIdx >= 0 {
		heap.Remove(&l.timers, d.heapIdx)
	}
	d.due = time.Time{}
}

// fire runs the timers that are due.
func (l *doorLoop) fire(now time.Time) {
	for len(l.timers) > 0 && !l.timers[0].due.After(now) {
		d := heap.Pop(&l.timers).(*door)
		d.due = time.Time{}
		switch {
		case l.closing[d.id] == d:
			l.retryClose(d)
		case d.state == DoorArmed:
			if now.Before(d.expires.Add(expiryGrace)) {
				l.schedule(d, d.expires.Add(expiryGrace))
				continue
			}
			l.close(d, CloseWaitFor)
		case d.state == DoorNarrow:
			l.checkHandshake(d, now)
		case d.state == DoorOpen:
			l.checkOpen(d)
		}
	}
}

// open registers a door for an accepted knock: armed at once if no other
// door of its key holds the key, queued otherwise.
func (l *doorLoop) open(r doorRequest) {
	e := l.e
	l.nextID++
	s := *e.settings.Load()
	d := &door{id: l.nextID, key: doorKey{src: r.src, dst: r.dst, port: r.port}, group: r.group, pinPort: r.pinPort,
		knocked: r.at, expires: r.at.Add(s.WaitFor), settings: s, heapIdx: -1}
	if s.Interface != "any" {
		d.iface = s.Interface
	}
	l.doors[d.id] = d
	l.e.openDoors.Store(int64(len(l.doors)))
	t := l.turns[d.key]
	if t == nil {
		t = &keyTurn{}
		l.turns[d.key] = t
	}
	if t.active != nil {
		d.state = DoorQueued
		t.queue = append(t.queue, d)
		l.event(d, DoorQueued, CloseNone)
		return
	}
	l.arm(d, t)
}

// arm arms d, which now holds its key's turn.
func (l *doorLoop) arm(d *door, t *keyTurn) {
	t.active = d
	if !l.e.now().Before(d.expires) {
		l.close(d, CloseWaitFor) // its time ran out in the queue
		return
	}
	l.apply(d, firewall.DoorArmed, func(err error) {
		if err != nil {
			l.firewallFailed(d, "arm", err)
			return
		}
		d.state, d.srcPort = DoorArmed, 0
		l.event(d, DoorArmed, CloseNone)
		l.schedule(d, d.expires.Add(expiryGrace))
	})
}

// release gives d's key to the next queued door, if d holds it.
func (l *doorLoop) release(d *door) {
	t := l.turns[d.key]
	if t == nil || t.active != d {
		return
	}
	t.active = nil
	for len(t.queue) > 0 && t.active == nil {
		next := t.queue[0]
		t.queue = t.queue[1:]
		l.arm(next, t)
	}
	if t.active == nil && len(t.queue) == 0 {
		delete(l.turns, d.key)
	}
}

// claim handles a SYN the kernel admitted through an armed door.
func (l *doorLoop) claim(c firewall.Claim) {
	e := l.e
	k := doorKey{src: c.Src, dst: c.Dst, port: c.Port}
	t := l.turns[k]
	var d *door
	if t != nil {
		d = t.active
	}
	switch {
	case d != nil && d.state == DoorArmed && (d.pinPort == 0 || d.pinPort == c.SrcPort):
	case d != nil && d.state != DoorArmed && d.srcPort == c.SrcPort:
		return // the same claim again (reported and then recovered)
	default:
		// The door expired or closed while the SYN was on its way; the
		// backend undid the claim.
		e.counters.add(ReasonLateClaim)
		e.log.Debug("claim for no armed door", "src", c.Src, "src_port", c.SrcPort, "dst", c.Dst, "port", c.Port)
		return
	}
	if c.Recovered {
		e.log.Warn("door claim found by reconciliation (its report was lost)", "door", d.id, "src", c.Src, "src_port", c.SrcPort)
	}
	d.srcPort = c.SrcPort
	l.apply(d, firewall.DoorClaimed, func(err error) {
		if err != nil {
			l.firewallFailed(d, "claim", err)
			return
		}
		d.state, d.claimedAt, d.sawConn, d.nextCount, d.countGap = DoorNarrow, e.now(), false, time.Time{}, 0
		e.counters.add(ReasonSYN)
		l.event(d, DoorNarrow, CloseNone)
		l.schedule(d, time.Now().Add(time.Millisecond))
	})
}

// checkHandshake looks for a narrow door's connection (CLASSIC-6.5).
func (l *doorLoop) checkHandshake(d *door, now time.Time) {
	e := l.e
	st := ConnNone
	if e.opts.Conns != nil {
		st = e.opts.Conns.State(d.local(), d.remote())
	}
	switch st {
	case ConnEstablished:
		l.apply(d, firewall.DoorNarrow, func(err error) {
			if err != nil {
				// The connection is in and the door is narrow in the
				// kernel already (the narrow element); what is left is
				// removing the spent armed element, which expires anyway.
				e.counters.add(ReasonFirewall)
				e.log.Error("firewall: cannot retire the armed part of an open door", "door", d.id, "err", err)
			}
			d.state = DoorOpen
			l.event(d, DoorOpen, CloseNone)
			l.schedule(d, time.Now().Add(d.settings.Delay2))
			l.release(d)
		})
		return
	case ConnClosed:
		// Established and already over: a connection shorter than a poll.
		l.close(d, CloseConnectionEnded)
		return
	case ConnHandshake:
		d.sawConn = true
	}
	deadline := d.claimedAt.Add(d.settings.Delay1)
	if now.Before(deadline) && !(st == ConnNone && d.sawConn) {
		// Invisible: a connection may have come and gone between two
		// looks (the door must then end at once, and free its key for a
		// door queued behind it). Its packets tell; they are asked for at
		// growing intervals, since reading them is not cheap.
		if st == ConnNone && !now.Before(d.nextCount) {
			if n, err := l.packets(d); err == nil && n >= completedPackets {
				l.close(d, CloseConnectionEnded)
				return
			}
			d.countGap = max(2*d.countGap, handshakePoll)
			d.nextCount = now.Add(d.countGap)
		}
		l.schedule(d, now.Add(handshakePoll))
		return
	}
	// Not established within connection-delay-1, or gone during the
	// handshake. A connection too short to be seen is told from a SYN
	// nobody followed up (a blind spoof) by the packets its door let in.
	if n, err := l.packets(d); err == nil && n >= completedPackets {
		l.close(d, CloseConnectionEnded)
		return
	}
	if now.Before(d.expires) {
		l.rearm(d)
		return
	}
	e.log.Warn("a door's connection never got established: its SYN passed doorman's table; check that the host's "+
		"firewall accepts packets with the door mark (doormand --check names the line to add) and that a service "+
		"listens on the port", "door", d.id, "src", d.key.src, "src_port", d.srcPort, "port", d.key.port)
	l.close(d, CloseNotEstablished)
}

// packets asks the firewall how many packets d's connection sent, where
// the backend can tell.
func (l *doorLoop) packets(d *door) (uint64, error) {
	pc, ok := l.e.opts.Firewall.(interface {
		Packets(context.Context, firewall.Door) (uint64, error)
	})
	if !ok {
		return 0, errors.ErrUnsupported
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return pc.Packets(ctx, d.fw(firewall.DoorClaimed))
}

// rearm gives a door whose claimed connection never completed its
// handshake back to its client for the rest of its waitfor: a spoofed SYN
// must not take the door for good (spec section 13).
func (l *doorLoop) rearm(d *door) {
	e := l.e
	e.counters.add(ReasonRearmed)
	e.log.Warn("door claimed by a SYN whose handshake never completed (spoofed?): armed again for the rest of waitfor",
		"door", d.id, "src", d.key.src, "src_port", d.srcPort, "port", d.key.port)
	l.apply(d, firewall.DoorArmed, func(err error) {
		if err != nil {
			l.firewallFailed(d, "re-arm", err)
			return
		}
		d.state, d.srcPort = DoorArmed, 0
		l.event(d, DoorArmed, CloseNone)
		l.schedule(d, d.expires.Add(expiryGrace))
	})
}

// checkOpen checks that an open door's connection still exists
// (CLASSIC-6.6).
func (l *doorLoop) checkOpen(d *door) {
	st := ConnNone
	if l.e.opts.Conns != nil {
		st = l.e.opts.Conns.State(d.local(), d.remote())
	}
	if st.ended() {
		l.close(d, CloseConnectionEnded)
		return
	}
	l.schedule(d, time.Now().Add(d.settings.Delay2))
}

// close closes d for why and frees its key.
func (l *doorLoop) close(d *door, why CloseReason) {
	l.unschedule(d)
	wasQueued := d.state == DoorQueued
	if wasQueued {
		l.finish(d, why)
		return
	}
	l.apply(d, firewall.DoorClosed, func(err error) {
		if err != nil {
			// Fail closed: the door counts as closed, the firewall is asked
			// again until it lets go (CLASSIC-6.10).
			l.e.counters.add(ReasonFirewall)
			l.e.log.Error("firewall: cannot remove a closed door; will retry", "door", d.id, "err", err)
			l.e.emit(Event{Kind: EventFirewall, Op: "close door " + strconv.FormatUint(d.id, 10), Err: err.Error()})
			d.retries = retryFirst
			l.closing[d.id] = d
			l.schedule(d, time.Now().Add(d.retries))
		}
		l.finish(d, why)
	})
}

// finish forgets a closed door and frees its key.
func (l *doorLoop) finish(d *door, why CloseReason) {
	prev := d.state
	d.state = DoorClosed
	delete(l.doors, d.id)
	l.e.openDoors.Store(int64(len(l.doors))) // before the event: who saw it closed sees it counted
	if t := l.turns[d.key]; t != nil {
		for i, q := range t.queue {
			if q == d {
				t.queue = append(t.queue[:i:i], t.queue[i+1:]...)
				break
			}
		}
	}
	if prev != DoorQueued {
		l.release(d)
	} else if t := l.turns[d.key]; t != nil && t.active == nil && len(t.queue) == 0 {
		delete(l.turns, d.key)
	}
	l.event(d, DoorClosed, why)
}

// retryClose asks the firewall again to let go of a closed door.
func (l *doorLoop) retryClose(d *door) {
	l.pending = append(l.pending, change{d: d, want: d.fw(firewall.DoorClosed), then: func(err error) {
		if err == nil {
			delete(l.closing, d.id)
			l.e.log.Info("firewall: closed door removed after retry", "door", d.id)
			l.e.emit(Event{Kind: EventFirewall, Op: "close door " + strconv.FormatUint(d.id, 10), Repaired: true})
			return
		}
		l.e.counters.add(ReasonFirewall)
		d.retries = min(2*d.retries, retryMax)
		l.e.log.Error("firewall: closed door still not removed", "door", d.id, "err", err, "next_try", d.retries)
		l.schedule(d, time.Now().Add(d.retries))
	}})
}

// firewallFailed handles a refused change: the door closes, and whatever
// the firewall holds for it goes (CLASSIC-6.10).
func (l *doorLoop) firewallFailed(d *door, op string, err error) {
	e := l.e
	e.counters.add(ReasonFirewall)
	e.log.Error("firewall: cannot "+op+" door; closing it", "door", d.id, "src", d.key.src, "port", d.key.port, "err", err)
	e.emit(Event{Kind: EventFirewall, Op: op + " door " + strconv.FormatUint(d.id, 10), Err: err.Error()})
	l.close(d, CloseFirewallError)
}

// apply queues a firewall change for d; then runs after the next flush.
func (l *doorLoop) apply(d *door, s firewall.DoorState, then func(error)) {
	l.pending = append(l.pending, change{d: d, want: d.fw(s), then: then})
}

// flush applies the queued changes in one batch and runs their
// continuations, which may queue more (arming the next door of a key).
func (l *doorLoop) flush() {
	for round := 0; len(l.pending) > 0 && round < 8; round++ {
		batch := l.pending
		l.pending = nil
		want := make([]firewall.Door, len(batch))
		for i, c := range batch {
			want[i] = c.want
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		errs := l.e.opts.Firewall.Apply(ctx, want)
		cancel()
		for i, c := range batch {
			var err error
			if i < len(errs) {
				err = errs[i]
			}
			c.then(err)
		}
	}
}

// shutdown closes every door (CLASSIC-6.8).
func (l *doorLoop) shutdown() {
	for _, d := range l.doors {
		l.close(d, CloseShutdown)
	}
	l.flush()
}

// event logs a door's state change and reports it.
func (l *doorLoop) event(d *door, s DoorState, why CloseReason) {
	e := l.e
	ev := Event{Time: e.now(), Kind: EventDoor, Door: d.id, State: s, Src: d.key.src, SrcPort: d.srcPort,
		Dst: d.key.dst, Port: d.key.port, Group: d.group, Why: why}
	level := slog.LevelDebug
	if s == DoorClosed || s == DoorOpen {
		level = config.LevelNotice
	}
	if e.log.Enabled(context.Background(), level) {
		attrs := []slog.Attr{slog.Uint64("door", d.id), slog.Any("src", d.key.src), slog.Int("src_port", int(d.srcPort)),
			slog.Any("dst", netip.AddrPortFrom(d.key.dst, d.key.port)), slog.String("group", d.group)}
		if s == DoorClosed {
			attrs = append(attrs, slog.String("why", why.String()))
		}
		e.log.LogAttrs(context.Background(), level, "door "+s.String(), attrs...)
	}
	e.emit(ev)
}

// doorHeap orders doors by their next timer.
type doorHeap []*door

func (h doorHeap) Len() int           { return len(h) }
func (h doorHeap) Less(i, j int) bool { return h[i].due.Before(h[j].due) }
func (h doorHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *doorHeap) Push(x any) {
	d := x.(*door)
	d.heapIdx = len(*h)
	*h = append(*h, d)
}
func (h *doorHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.heapIdx = -1
	return d
}
