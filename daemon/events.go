package daemon

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"time"
)

// Event is something the engine reports for tests, tools and the event
// stream (doormand --events): the typed counterpart of the log, which is
// for humans and may change wording freely. Which fields are set depends on
// Kind; see the docs of each kind.
type Event struct {
	Time time.Time
	Kind EventKind

	// Knock and door events: addresses, the guest and the TCP port.
	Src, Dst netip.Addr
	Group    string
	Port     uint16

	// EventKnock: Verdict is ReasonAccepted or why the knock was refused;
	// Protocol is "classic" or "modern". Modern is set for a modern knock
	// whose guest was found: it was opened and read.
	Verdict  Reason
	Protocol string
	Modern   *ModernInfo

	// EventDoor: the door, its new state, the client's source port once
	// known, and for DoorClosed why it closed.
	Door    uint64
	State   DoorState
	SrcPort uint16
	Why     CloseReason

	// EventFirewall: what the backend found or repaired. EventReload: Err
	// is why the new files were refused ("" = reloaded).
	Op       string
	Err      string
	Repaired bool

	// EventCounters: every counter, and the doors not closed.
	Counters  map[string]uint64
	OpenDoors int
}

// ModernInfo is what a knock event reports of a modern knock's request
// once its guest is known (MODERN-12.11 step 8 on).
type ModernInfo struct {
	// Skew is how far the knocker's clock was off the doorman's when the
	// knock arrived: positive when it is ahead (MODERN-12.14).
	Skew time.Duration
	// Stated says whether the knock stated its source address; if not,
	// it was "as seen" (MODERN-12.15).
	Stated bool
	// SrcPort is the TCP source port the knock stated; 0 = none
	// (MODERN-12.18).
	SrcPort uint16
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventReady: the firewall is in place (an earlier run's leftovers
	// removed) and knocks are being received.
	EventReady EventKind = iota + 1
	// EventKnock: a datagram reached verification: classic payloads that
	// start with a digit, modern ones past the cheap checks.
	EventKnock
	// EventDoor: a door changed state.
	EventDoor
	// EventFirewall: the firewall backend reported a fault or repaired one.
	EventFirewall
	// EventReload: a reload was handled.
	EventReload
	// EventCounters: the counters, on request (SIGUSR1) and at stop.
	EventCounters
	// EventStopped: every door is closed and every rule removed.
	EventStopped
)

var eventKindNames = [...]string{EventReady: "ready", EventKnock: "knock", EventDoor: "door",
	EventFirewall: "firewall", EventReload: "reload", EventCounters: "counters", EventStopped: "stopped"}

func (k EventKind) String() string {
	if int(k) < len(eventKindNames) && eventKindNames[k] != "" {
		return eventKindNames[k]
	}
	return "EventKind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalJSON encodes the event as one object of the event stream's schema
// (README "Event stream"): "time", "event" and the fields of its kind.
func (e Event) MarshalJSON() ([]byte, error) {
	m := map[string]any{"time": e.Time.UTC().Format(time.RFC3339Nano), "event": e.Kind.String()}
	addrs := func() {
		if e.Src.IsValid() {
			m["src"] = e.Src.String()
		}
		if e.Dst.IsValid() {
			m["dst"] = e.Dst.String()
		}
		if e.Group != "" {
			m["group"] = e.Group
		}
		if e.Port != 0 {
			m["port"] = e.Port
		}
	}
	switch e.Kind {
	case EventKnock:
		addrs()
		m["protocol"] = e.Protocol
		if mi := e.Modern; mi != nil {
			m["skew_ms"] = mi.Skew.Milliseconds()
			m["source"] = "seen"
			if mi.Stated {
				m["source"] = "stated"
			}
			if mi.SrcPort != 0 {
				m["src_port"] = mi.SrcPort
			}
		}
		if e.Verdict == ReasonAccepted {
			m["verdict"] = "accepted"
		} else {
			m["verdict"], m["reason"] = "rejected", e.Verdict.String()
		}
	case EventDoor:
		addrs()
		m["door"], m["state"], m["src_port"] = e.Door, e.State.String(), e.SrcPort
		if e.State == DoorClosed {
			m["why"] = e.Why.String()
		}
	case EventFirewall:
		m["op"], m["repaired"] = e.Op, e.Repaired
		if e.Err != "" {
			m["error"] = e.Err
		}
	case EventReload:
		m["ok"] = e.Err == ""
		if e.Err != "" {
			m["error"] = e.Err
		}
	case EventCounters:
		m["counters"], m["open_doors"] = e.Counters, e.OpenDoors
	}
	return json.Marshal(m)
}

// CloseReason says why a door closed.
type CloseReason uint8

// Reasons a door closes.
const (
	// CloseNone: the door has not closed.
	CloseNone CloseReason = iota
	// CloseWaitFor: no SYN claimed the door within waitfor (CLASSIC-6.3).
	CloseWaitFor
	// CloseNotEstablished: the claimed connection was never established
	// within connection-delay-1 and the door's time was up (CLASSIC-6.5).
	CloseNotEstablished
	// CloseConnectionEnded: the door's connection ended (CLASSIC-6.6).
	CloseConnectionEnded
	// CloseShutdown: the daemon stopped (CLASSIC-6.8).
	CloseShutdown
	// CloseFirewallError: the firewall refused a change (CLASSIC-6.10).
	CloseFirewallError
)

var closeReasonNames = [...]string{"", "waitfor", "not-established", "connection-ended", "shutdown", "firewall-error"}

func (r CloseReason) String() string {
	if int(r) < len(closeReasonNames) {
		return closeReasonNames[r]
	}
	return "CloseReason(" + strconv.Itoa(int(r)) + ")"
}
