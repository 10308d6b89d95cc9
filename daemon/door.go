package daemon

import (
	"context"
	"net/netip"
	"time"

	"github.com/doorman-project/doorman/daemon/firewall"
)

// DoorState is where a door is in its lifecycle (spec section 6):
//
//	closed --knock--> broad --SYN--> narrow --established--> open
//	  ^                 |              |                       |
//	  +-- waitfor ------+   delay-1 ---+     connection ended -+
//
// The zero value is DoorClosed.
type DoorState uint8

// Door states.
const (
	DoorClosed DoorState = iota
	DoorBroad
	DoorNarrow
	DoorOpen
)

func (s DoorState) String() string {
	return [...]string{"closed", "broad", "narrow", "open"}[s]
}

// DoorEvent reports a door's state change, for tests and the simulator.
type DoorEvent struct {
	ID      uint64
	State   DoorState
	Src     netip.Addr
	SrcPort uint16 // 0 until the SYN
	Dst     netip.AddrPort
	Group   string
	Why     string // for DoorClosed: "waitfor", "not-established", "connection-ended", "shutdown", "firewall-error"
	At      time.Time
}

// DoorInfo describes an open door.
type DoorInfo struct {
	ID      uint64
	State   DoorState
	Src     netip.Addr
	SrcPort uint16
	Dst     netip.AddrPort
	Group   string
	Since   time.Time
}

type door struct {
	id       uint64
	key      doorKey
	group    string
	settings Settings
	syn      chan synEvent
	opened   time.Time

	// Guarded by Engine.mu.
	state   DoorState
	srcPort uint16
}

func (d *door) info() DoorInfo {
	return DoorInfo{ID: d.id, State: d.state, Src: d.key.src, SrcPort: d.srcPort,
		Dst: netip.AddrPortFrom(d.key.dst, d.key.port), Group: d.group, Since: d.opened}
}

// openDoor registers a door for an accepted knock and starts its goroutine
// (one goroutine per door, no process, CLASSIC-6.7). The door is in the
// waiting queue before its broad rule exists, so no SYN can slip past it.
func (e *Engine) openDoor(ctx context.Context, src, dst netip.Addr, port uint16, group string) {
	e.mu.Lock()
	e.nextID++
	d := &door{id: e.nextID, key: doorKey{src: src, dst: dst, port: port}, group: group,
		settings: *e.settings.Load(), syn: make(chan synEvent, synQueue), opened: e.now(), state: DoorBroad}
	e.doors[d.id] = d
	if d.settings.SYNFromCapture {
		e.waiting[d.key] = append(e.waiting[d.key], d)
	}
	e.mu.Unlock()
	e.wg.Add(1)
	go e.routineDoor(ctx, d)
}

func (e *Engine) rule(d *door, srcPort uint16) firewall.Rule {
	iface := d.settings.Interface
	if iface == "any" {
		iface = ""
	}
	return firewall.Rule{Iface: iface, Src: d.key.src, SrcPort: srcPort, Dst: d.key.dst, DstPort: d.key.port}
}

func (e *Engine) setState(d *door, s DoorState, why string) {
	e.mu.Lock()
	d.state = s
	if s == DoorClosed {
		delete(e.doors, d.id)
		e.unwaitLocked(d)
	}
	ev := DoorEvent{ID: d.id, State: s, Src: d.key.src, SrcPort: d.srcPort,
		Dst: netip.AddrPortFrom(d.key.dst, d.key.port), Group: d.group, Why: why, At: e.now()}
	e.mu.Unlock()
	level := LevelNotice
	if s != DoorClosed {
		level = -4 // debug
	}
	e.log.Log(context.Background(), level, "door "+s.String(), "door", d.id, "src", d.key.src,
		"src_port", d.srcPort, "dst", ev.Dst, "group", d.group, "why", why)
	if e.opts.OnDoor != nil {
		e.opts.OnDoor(ev)
	}
}

func (e *Engine) unwaitLocked(d *door) {
	q := e.waiting[d.key]
	for i, x := range q {
		if x == d {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(e.waiting, d.key)
	} else {
		e.waiting[d.key] = q
	}
}

// remove deletes a rule, handing it to the retry loop if that fails
// (CLASSIC-6.10).
func (e *Engine) remove(r firewall.Rule) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.opts.Firewall.Delete(ctx, r); err != nil {
		e.counters.add(ReasonFirewall)
		e.log.Error("firewall: cannot remove rule; will retry", "rule", r.String(), "err", err)
		e.mu.Lock()
		e.stuck[r] = struct{}{}
		e.mu.Unlock()
	}
}

// routineDoor drives one door from broad to closed.
func (e *Engine) routineDoor(ctx context.Context, d *door) {
	defer e.wg.Done()
	s := d.settings
	broad := e.rule(d, 0)
	addStart := time.Now()
	if err := e.opts.Firewall.Add(ctx, broad); err != nil {
		e.counters.add(ReasonFirewall)
		e.log.Error("firewall: cannot add broad rule; door not opened", "rule", broad.String(), "err", err)
		e.setState(d, DoorClosed, "firewall-error")
		return
	}
	inForce := time.Now()
	e.setState(d, DoorBroad, "knock")

	// Wait for the first SYN that the kernel let in (CLASSIC-6.3, 6.4).
	sport, why := e.awaitSYN(ctx, d, addStart, inForce)
	if sport == 0 {
		e.remove(broad)
		e.setState(d, DoorClosed, why)
		return
	}
	narrow := e.rule(d, sport)
	if err := e.opts.Firewall.Add(ctx, narrow); err != nil {
		e.counters.add(ReasonFirewall)
		e.log.Error("firewall: cannot add narrow rule; closing door", "rule", narrow.String(), "err", err)
		e.remove(broad)
		e.setState(d, DoorClosed, "firewall-error")
		return
	}
	e.remove(broad)
	e.setState(d, DoorNarrow, "syn")

	local := netip.AddrPortFrom(d.key.dst, d.key.port)
	remote := netip.AddrPortFrom(d.key.src, sport)
	// Handshake (CLASSIC-6.5).
	if !e.awaitEstablished(ctx, s, local, remote) {
		e.remove(narrow)
		why := "not-established"
		if ctx.Err() != nil {
			why = "shutdown"
		}
		e.setState(d, DoorClosed, why)
		return
	}
	e.setState(d, DoorOpen, "established")

	// Until the connection ends (CLASSIC-6.6).
	why = e.awaitEnd(ctx, s, local, remote)
	e.remove(narrow)
	e.setState(d, DoorClosed, why)
}

// synEvent is a captured SYN offered to a door: its source port and when
// the kernel received it (zero if capture could not say).
type synEvent struct {
	port uint16
	at   time.Time
}

// awaitSYN returns the source port of the door's first SYN that the kernel
// let in, or 0 and why there is none. The broad rule was being added from
// addStart and was in force at inForce: a SYN received before addStart was
// dropped, one received after inForce was let in, and one in between (or of
// unknown time) is checked against the kernel's socket table.
func (e *Engine) awaitSYN(ctx context.Context, d *door, addStart, inForce time.Time) (uint16, string) {
	timer := time.NewTimer(d.settings.WaitFor)
	defer timer.Stop()
	if d.settings.SYNFromCapture || e.opts.Conns == nil {
		for {
			select {
			case ev := <-d.syn:
				switch {
				case !ev.at.IsZero() && ev.at.Before(addStart):
					continue // came before the rule: dropped by the kernel
				case !ev.at.IsZero() && ev.at.After(inForce):
				case !e.confirmSYN(ctx, d, ev.port):
					continue
				}
				if e.claim(d, ev.port) {
					return ev.port, ""
				}
			case <-timer.C:
				return 0, "waitfor"
			case <-ctx.Done():
				return 0, "shutdown"
			}
		}
	}
	// No SYNs from capture: look for the connection in the kernel's table.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	local := netip.AddrPortFrom(d.key.dst, d.key.port)
	for {
		select {
		case <-timer.C:
			return 0, "waitfor"
		case <-ctx.Done():
			return 0, "shutdown"
		case <-tick.C:
			if p, ok := e.opts.Conns.FindFrom(local, d.key.src); ok && e.claim(d, p) {
				return p, ""
			}
		}
	}
}

// synQueue bounds the SYNs queued for one door; more are dropped (a door
// needs one, and a flood of SYNs must not grow memory).
const synQueue = 16

// confirmSYN reports whether the kernel let a captured SYN in, for a SYN
// whose receive time does not tell: capture sees every SYN, also those the
// firewall dropped. A SYN that got in has a socket (a request socket, then
// an established one), which may appear a moment after capture saw the
// SYN, so look a few times.
func (e *Engine) confirmSYN(ctx context.Context, d *door, sport uint16) bool {
	if e.opts.Conns == nil {
		return true
	}
	local := netip.AddrPortFrom(d.key.dst, d.key.port)
	remote := netip.AddrPortFrom(d.key.src, sport)
	for i := 0; i < 5; i++ {
		if e.opts.Conns.State(local, remote) != ConnEnded {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
	return false
}

// claim gives sport to d unless another door of the same address and port
// already took it, and stops d waiting for SYNs.
func (e *Engine) claim(d *door, sport uint16) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, x := range e.doors {
		if x != d && x.key == d.key && x.srcPort == sport {
			return false
		}
	}
	d.srcPort = sport
	e.unwaitLocked(d)
	return true
}

func (e *Engine) awaitEstablished(ctx context.Context, s Settings, local, remote netip.AddrPort) bool {
	if e.opts.Conns == nil {
		return false
	}
	deadline := time.NewTimer(s.Delay1)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		switch e.opts.Conns.State(local, remote) {
		case ConnEstablished:
			return true
		case ConnEnded:
			// Gone before we looked: it may have come and gone already, or
			// not exist yet; keep looking until the deadline.
		}
		select {
		case <-deadline.C:
			return e.opts.Conns.State(local, remote) == ConnEstablished
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

func (e *Engine) awaitEnd(ctx context.Context, s Settings, local, remote netip.AddrPort) string {
	every := s.Delay2
	if every <= 0 {
		every = 5 * time.Second
	}
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return "shutdown"
		case <-tick.C:
			if e.opts.Conns.State(local, remote) == ConnEnded {
				return "connection-ended"
			}
		}
	}
}
