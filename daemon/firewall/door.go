package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Door is one door as a backend sees it: what the daemon wants the
// firewall to let through for one accepted knock. The daemon hands the
// whole value to Apply at every state change; a backend keeps what it
// applied, keyed by ID, and works out the difference.
//
// Door is a comparable value; the zero value is not a valid door.
type Door struct {
	// ID identifies the door for the daemon's run. It is never 0.
	ID uint64
	// Iface is the interface the knock arrived on; "" or "any" when not
	// known. Only the script backend passes it on (0.81's first script
	// argument); the kernel rules match addresses, not interfaces.
	Iface string
	// Src is the client's address and Dst the local address the knock was
	// sent to; both of one family, IPv4 in its 4-byte form.
	Src, Dst netip.Addr
	// Port is the TCP port the door opens.
	Port uint16
	// SrcPort is the client's TCP source port: 0 while any source port may
	// claim an armed door, then the port of the SYN that claimed it. A door
	// armed with SrcPort set (a modern knock that names its source port)
	// can be claimed from that port only.
	SrcPort uint16
	// State is the state the daemon wants the door to be in.
	State DoorState
	// Expires is when an armed door is forgotten by the kernel itself if
	// no SYN claimed it (the knock's time plus waitfor, CLASSIC-6.3).
	Expires time.Time
}

// DoorState is what a door lets through. The zero value is DoorClosed.
//
//	closed --Apply--> armed --SYN (kernel)--> claimed --Apply--> narrow --Apply--> closed
//	                    ^                        |
//	                    +---------- Apply -------+  (re-arm: the handshake never completed)
type DoorState uint8

// Door states.
const (
	// DoorClosed: nothing of the door is in the firewall.
	DoorClosed DoorState = iota
	// DoorArmed: the first TCP SYN from Src (from SrcPort, if set) to
	// Dst:Port claims the door, until Expires. Claiming is done by the
	// kernel, atomically: of SYNs arriving together exactly one wins, and
	// nothing but a SYN can claim (CLASSIC-6.2).
	DoorArmed
	// DoorClaimed: the kernel admitted the SYN from SrcPort (the backend
	// reported a Claim); that connection passes, rival SYNs for the door
	// are still refused.
	DoorClaimed
	// DoorNarrow: only the connection Src:SrcPort -> Dst:Port passes.
	DoorNarrow
)

var doorStateNames = [...]string{"closed", "armed", "claimed", "narrow"}

func (s DoorState) String() string {
	if int(s) < len(doorStateNames) {
		return doorStateNames[s]
	}
	return "DoorState(" + strconv.Itoa(int(s)) + ")"
}

// String formats the door for logs, e.g.
// "door 7 tcp 198.18.0.2:any -> 198.18.0.1:22 (armed)".
func (d Door) String() string {
	var b strings.Builder
	b.WriteString("door ")
	b.WriteString(strconv.FormatUint(d.ID, 10))
	b.WriteString(" ")
	b.WriteString(d.rule(d.SrcPort).String())
	b.WriteString(" (")
	b.WriteString(d.State.String())
	b.WriteString(")")
	return b.String()
}

// rule returns the door as a script-level rule with source port sport.
func (d Door) rule(sport uint16) Rule {
	return Rule{Iface: d.Iface, Src: d.Src, SrcPort: sport, Dst: d.Dst, DstPort: d.Port}
}

// validate checks that every backend can express the door.
func (d Door) validate() error {
	if d.ID == 0 {
		return fmt.Errorf("%w: door id 0", ErrInvalidRule)
	}
	if d.State > DoorNarrow {
		return fmt.Errorf("%w: state %v", ErrInvalidRule, d.State)
	}
	if d.Src.Is4In6() || d.Dst.Is4In6() {
		// A mapped address would make an IPv6 knock open an IPv4 door.
		return fmt.Errorf("%w: IPv4-mapped address", ErrInvalidRule)
	}
	if (d.State == DoorClaimed || d.State == DoorNarrow) && d.SrcPort == 0 {
		return fmt.Errorf("%w: %v door without a source port", ErrInvalidRule, d.State)
	}
	return d.rule(d.SrcPort).validate()
}

// key is where a door's SYNs come from and go to: two doors with equal
// keys compete for the same SYNs, so the daemon arms at most one of them
// at a time.
type key struct {
	src, dst netip.Addr
	port     uint16
}

func (d Door) key() key { return key{src: d.Src.WithZone(""), dst: d.Dst.WithZone(""), port: d.Port} }

// Claim reports a TCP SYN that the kernel admitted through an armed door:
// the connection Src:SrcPort -> Dst:Port now owns that door. It comes from
// the kernel (the rule that admitted the SYN reports it), never from a
// capture that may have seen dropped SYNs too.
type Claim struct {
	Src, Dst netip.Addr
	SrcPort  uint16
	Port     uint16
	// Time is when the daemon received the report.
	Time time.Time
	// Recovered says the claim was found by reconciliation, not reported
	// when it happened (the report was lost).
	Recovered bool
}

// Fault reports trouble a backend found or repaired on its own: a table or
// chain that disappeared (an admin reloaded the firewall), a rule that could
// not be removed, lost kernel reports.
type Fault struct {
	// Op names what was going on, e.g. "restore table", "remove rule".
	Op string
	// Err is the problem; nil when Repaired reports that it is over.
	Err error
	// Repaired says the backend put things right (for example restored
	// its table with every open door).
	Repaired bool
}

// Notify receives what a backend reports while it runs. The functions are
// called from the backend's own goroutines, must not block for long and
// must not call back into the backend. A nil function discards reports.
type Notify struct {
	Claim func(Claim)
	Fault func(Fault)
}

func (n Notify) claim(c Claim) {
	if n.Claim != nil {
		n.Claim(c)
	}
}

func (n Notify) fault(f Fault) {
	if n.Fault != nil {
		n.Fault(f)
	}
}

// Sentinel errors shared by all backends.
var (
	// ErrInvalidRule: the door or rule cannot be expressed (invalid or
	// mixed-family addresses, port 0, a bad interface name).
	ErrInvalidRule = errors.New("invalid rule")
	// ErrUnknownRule: a rule or door this backend does not hold.
	ErrUnknownRule = errors.New("rule not added by this backend")
	// ErrNotStarted: Apply before Start, or after Close.
	ErrNotStarted = errors.New("backend not started")
	// ErrUnsupported: the backend does not exist on this operating system.
	ErrUnsupported = errors.New("firewall backend not supported on this OS")
	// ErrTooManyDoors: the configured number of concurrent doors is
	// reached; the door was not armed.
	ErrTooManyDoors = errors.New("too many open doors")
	// ErrTransition: Apply was asked for a state change the lifecycle does
	// not have (for example from closed straight to narrow).
	ErrTransition = errors.New("impossible door state change")
)

// DoorError says which door a backend failed on. Apply's errors are of
// this type, so the daemon can log the door and still test the cause with
// errors.Is / errors.As.
type DoorError struct {
	Backend string
	Door    Door
	Err     error
}

// Error implements error.
func (e *DoorError) Error() string {
	return e.Backend + ": " + e.Door.String() + ": " + e.Err.Error()
}

// Unwrap returns the cause.
func (e *DoorError) Unwrap() error { return e.Err }

func doorErr(backend string, d Door, err error) error {
	if err == nil {
		return nil
	}
	return &DoorError{Backend: backend, Door: d, Err: err}
}
