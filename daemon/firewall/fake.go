package firewall

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

const fakeBackend = "fake"

// Fake is an in-memory backend for unit tests of the daemon. It checks
// doors and their state changes like the real backends (invalid doors,
// impossible transitions, use before Start), records the doors held and
// every change, can be told to fail the next one, and lets a test play the
// kernel by reporting claims. Safe for concurrent use.
type Fake struct {
	mu       sync.Mutex
	started  bool
	doors    map[uint64]Door
	calls    []FakeCall
	failNext error
	notify   Notify
	blocked  map[key]bool
	packets  map[uint64]uint64
}

// FakeCall is one door change the Fake saw.
type FakeCall struct {
	Door Door
	Err  error // what Apply returned for it
}

// NewFake returns an unstarted Fake.
func NewFake() *Fake { return &Fake{} }

// Start makes the Fake ready; like the real backends it forgets any doors
// of an earlier run.
func (f *Fake) Start(ctx context.Context, n Notify) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.doors = map[uint64]Door{}
	f.notify = n
	f.started = true
	return nil
}

// Apply records each door's new state, or fails with the error given to
// FailNext (for the first door of the call), ErrNotStarted, or the door's
// validation or transition error.
func (f *Fake) Apply(ctx context.Context, doors []Door) []error {
	f.mu.Lock()
	defer f.mu.Unlock()
	errs := make([]error, len(doors))
	for i, d := range doors {
		err := f.applyLocked(ctx, d)
		errs[i] = doorErr(fakeBackend, d, err)
		f.calls = append(f.calls, FakeCall{Door: d, Err: errs[i]})
	}
	return errs
}

func (f *Fake) applyLocked(ctx context.Context, d Door) error {
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if !f.started {
		return ErrNotStarted
	}
	if err := d.validate(); err != nil {
		return err
	}
	have := f.doors[d.ID]
	if !Transition(have.State, d.State) {
		return fmt.Errorf("%w: %v to %v", ErrTransition, have.State, d.State)
	}
	if d.State == DoorArmed && have.State == DoorClosed {
		for _, o := range f.doors {
			if o.key() == d.key() && (o.State == DoorArmed || o.State == DoorClaimed) {
				return fmt.Errorf("%w: door %d is armed for the same address and port", ErrTransition, o.ID)
			}
		}
	}
	if d.State == DoorClosed {
		delete(f.doors, d.ID)
	} else {
		f.doors[d.ID] = d
	}
	return nil
}

// Transition reports whether a door may go from one state to another (or
// stay). Backends refuse the others with ErrTransition.
func Transition(from, to DoorState) bool {
	switch from {
	case DoorClosed:
		return to == DoorClosed || to == DoorArmed
	case DoorArmed:
		return to == DoorArmed || to == DoorClaimed || to == DoorClosed
	case DoorClaimed:
		return true
	case DoorNarrow:
		return to == DoorNarrow || to == DoorClosed
	}
	return false
}

// Close forgets every door. Idempotent.
func (f *Fake) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.doors = nil
	f.started = false
	return nil
}

// Doors returns the doors held, by ID.
func (f *Fake) Doors() []Door {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Door, 0, len(f.doors))
	for _, d := range f.doors {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b Door) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// Calls returns a copy of every door change seen, in order.
func (f *Fake) Calls() []FakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

// FailNext makes the next door change fail with err (wrapped in a
// *DoorError), without changing anything. nil cancels it.
func (f *Fake) FailNext(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.failNext = err
}

// Claim reports c as the kernel would: a SYN admitted through an armed
// door. It reports it whether or not a door is armed for it (the real
// kernel cannot, but the daemon must cope with late reports).
func (f *Fake) Claim(c Claim) {
	f.mu.Lock()
	n := f.notify
	f.mu.Unlock()
	n.claim(c)
}

// Fault reports flt as a backend's upkeep would.
func (f *Fake) Fault(flt Fault) {
	f.mu.Lock()
	n := f.notify
	f.mu.Unlock()
	n.fault(flt)
}

// setBlocked records a key the script backend blocks (see NFTables.setBlocked).
func (f *Fake) setBlocked(d Door, on bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.started {
		return ErrNotStarted
	}
	if f.blocked == nil {
		f.blocked = map[key]bool{}
	}
	if on {
		f.blocked[d.key()] = true
	} else {
		delete(f.blocked, d.key())
	}
	return nil
}

// Blocked reports whether new connections of d's key are refused because a
// script rule for it may be stuck.
func (f *Fake) Blocked(d Door) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blocked[d.key()]
}

// Packets returns what SetPackets set for the door (0 by default).
func (f *Fake) Packets(_ context.Context, d Door) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.packets[d.ID], nil
}

// SetPackets sets what Packets reports for door id, as if its claimed
// connection had let n packets through.
func (f *Fake) SetPackets(id, n uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.packets == nil {
		f.packets = map[uint64]uint64{}
	}
	f.packets[id] = n
}
