package doormandtest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"
)

// Kind is the "event" field of an event: what the event reports.
type Kind string

// The kinds of events of schema v1 (doormand --events; README "Event
// stream"). Readers ignore kinds they do not know.
const (
	KindReady    Kind = "ready"    // the firewall is in place and knocks are received
	KindKnock    Kind = "knock"    // a datagram reached verification
	KindDoor     Kind = "door"     // a door changed state
	KindFirewall Kind = "firewall" // a firewall fault or repair
	KindReload   Kind = "reload"   // a SIGHUP was handled
	KindCounters Kind = "counters" // on SIGUSR1 and at stop
	KindStopped  Kind = "stopped"  // every rule removed, about to exit
)

// Door states of KindDoor events.
const (
	StateQueued = "queued" // another door of the same client, address and port holds the key
	StateArmed  = "armed"  // a SYN may claim it
	StateNarrow = "narrow" // a SYN claimed it; handshake
	StateOpen   = "open"   // established
	StateClosed = "closed"
)

// Verdicts of KindKnock events.
const (
	VerdictAccepted = "accepted"
	VerdictRejected = "rejected"
)

// Event is one record of doormand's event stream, decoded. Which fields are
// set depends on Kind; the stream's unknown fields are ignored.
type Event struct {
	Time time.Time `json:"time"`
	Kind Kind      `json:"event"`

	// Knock and door events.
	Src   netip.Addr `json:"src"`
	Dst   netip.Addr `json:"dst"`
	Group string     `json:"group"`
	Port  uint16     `json:"port"`

	// KindKnock: Verdict is VerdictAccepted or VerdictRejected, Reason
	// why a knock was rejected ("replay", "unknown-guest", ...).
	Verdict  string `json:"verdict"`
	Reason   string `json:"reason"`
	Protocol string `json:"protocol"`
	// Modern knocks: whether the address the door is for was "stated" in
	// the knock or "seen" on the wire, and how far the knock's clock was
	// from the doorman's (positive: ahead).
	Source string `json:"source"`
	SkewMS int64  `json:"skew_ms"`

	// KindDoor: the door's id (unique per run), its new state, the
	// client's source port once known (0 before), and for StateClosed why
	// ("waitfor", "not-established", "connection-ended", "shutdown",
	// "firewall-error").
	Door    uint64 `json:"door"`
	State   string `json:"state"`
	SrcPort uint16 `json:"src_port"`
	Why     string `json:"why"`

	// KindFirewall and KindReload.
	Op       string `json:"op"`
	Error    string `json:"error"`
	Repaired bool   `json:"repaired"`
	OK       bool   `json:"ok"`

	// KindCounters: every non-zero counter by reason, and the doors not
	// closed.
	Counters  map[string]uint64 `json:"counters"`
	OpenDoors int               `json:"open_doors"`
}

// Decode reads an event stream: one JSON object a line. A line that is not
// an object of the stream (no "time" or "event") is an error naming its
// line number; a last line without its newline is left for a later read
// and its length returned as rest.
func Decode(b []byte) (events []Event, rest int, err error) {
	line := 0
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return events, len(b), nil
		}
		line++
		raw := b[:i]
		b = b[i+1:]
		if len(bytes.TrimSpace(raw)) == 0 {
			continue
		}
		var ev Event
		if err := json.Unmarshal(raw, &ev); err != nil {
			return events, 0, fmt.Errorf("event line %d %q: %w", line, raw, err)
		}
		if ev.Kind == "" || ev.Time.IsZero() {
			return events, 0, fmt.Errorf("event line %d %q: no \"event\" or \"time\"", line, raw)
		}
		events = append(events, ev)
	}
	return events, 0, nil
}

// Match selects events.
type Match func(Event) bool

// IsKind matches every event of kind k.
func IsKind(k Kind) Match { return func(e Event) bool { return e.Kind == k } }

// Accepted matches knocks that were accepted.
func Accepted() Match {
	return func(e Event) bool { return e.Kind == KindKnock && e.Verdict == VerdictAccepted }
}

// Rejected matches knocks rejected for reason; "" matches any reason.
func Rejected(reason string) Match {
	return func(e Event) bool {
		return e.Kind == KindKnock && e.Verdict == VerdictRejected && (reason == "" || e.Reason == reason)
	}
}

// DoorState matches doors entering state.
func DoorState(state string) Match {
	return func(e Event) bool { return e.Kind == KindDoor && e.State == state }
}

// Closed matches doors closing for why; "" matches any reason.
func Closed(why string) Match {
	return func(e Event) bool {
		return e.Kind == KindDoor && e.State == StateClosed && (why == "" || e.Why == why)
	}
}

// From narrows m to events whose source address is a.
func (m Match) From(a netip.Addr) Match {
	return func(e Event) bool { return m(e) && e.Src == a }
}

// And narrows m to events that also match o.
func (m Match) And(o Match) Match {
	return func(e Event) bool { return m(e) && o(e) }
}

// Stream follows an event file that a doormand appends to.
type Stream struct {
	path string

	mu     sync.Mutex
	off    int64
	events []Event
	err    error
}

// NewStream follows the events file at path, which may not exist yet.
func NewStream(path string) *Stream { return &Stream{path: path} }

// Events returns every event so far, reading what was appended since the
// last call.
func (s *Stream) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readLocked()
	return append([]Event(nil), s.events...)
}

// Err returns the first malformed line of the stream, if any.
func (s *Stream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.readLocked()
	return s.err
}

func (s *Stream) readLocked() {
	if s.err != nil {
		return
	}
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		s.err = err
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, s.off, 1<<40))
	if err != nil {
		s.err = err
		return
	}
	evs, rest, err := Decode(b)
	s.events = append(s.events, evs...)
	s.off += int64(len(b) - rest)
	s.err = err
}

// Count returns how many events so far match m.
func (s *Stream) Count(m Match) int {
	n := 0
	for _, e := range s.Events() {
		if m(e) {
			n++
		}
	}
	return n
}

// Last returns the last event so far that matches m.
func (s *Stream) Last(m Match) (Event, bool) {
	evs := s.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if m(evs[i]) {
			return evs[i], true
		}
	}
	return Event{}, false
}

// ErrTimeout is returned by Wait when too few events matched in time.
var ErrTimeout = errors.New("doormandtest: timed out waiting for events")

// Wait waits until at least n events match m, polling every 10 ms, and
// returns them. After within it returns ErrTimeout (wrapped, with the count
// seen); a malformed stream is an error at once.
func (s *Stream) Wait(m Match, n int, within time.Duration) ([]Event, error) {
	deadline := time.Now().Add(within)
	for {
		var got []Event
		for _, e := range s.Events() {
			if m(e) {
				got = append(got, e)
			}
		}
		if err := s.Err(); err != nil {
			return got, err
		}
		if len(got) >= n {
			return got, nil
		}
		if time.Now().After(deadline) {
			return got, fmt.Errorf("%w: %d of %d after %v", ErrTimeout, len(got), n, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
