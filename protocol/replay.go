package protocol

import (
	"hash/maphash"
	"math"
	"math/bits"
	"time"
)

// DefaultReplayCapacity is the number of digests a ReplaySet holds when its
// Capacity is zero.
const DefaultReplayCapacity = 1_000_000

// MinReplayCapacity is the smallest capacity a configuration may ask for,
// as in 0.81's hash-archive-size.
const MinReplayCapacity = 1000

// ReplaySet is the exact replay decision (CLASSIC-5): it remembers the MAC of
// every accepted knock, with the second it was accepted, and refuses any
// knock whose MAC it has seen.
//
// Classic knocks carry no time, so no entry can ever be forgotten safely.
// When the set is full it therefore refuses every new knock (ErrReplayFull)
// instead of evicting an old digest, which would make that old knock
// replayable (CLASSIC-5.4). The daemon warns long before that happens.
//
// The set is an open-addressing table of whole digests (linear probing, at
// most 80 % full): 20 bytes a slot, about 25 MB for a million digests, with
// no per-entry allocation. It grows as digests are added; Reserve sizes it
// once for a known count, as a loader does.
//
// The zero value is ready to use with DefaultReplayCapacity and time.Now.
// A ReplaySet is not safe for concurrent use.
type ReplaySet struct {
	// Capacity bounds the number of digests Admit accepts; 0 means
	// DefaultReplayCapacity.
	Capacity int
	// Now is the clock that stamps accepted knocks; nil means time.Now.
	Now func() time.Time

	seed  maphash.Seed
	slots []replaySlot // len 0, or at least one slot empty
	n     int
}

// replaySlot is one table slot. The time is kept to the second, which is
// all the log of a replay needs (CLASSIC-5.3), and is at least 1 so that 0
// marks an empty slot.
type replaySlot struct {
	mac [MACSize]byte
	sec uint32
}

func (r *ReplaySet) capacity() int {
	if r.Capacity <= 0 {
		return DefaultReplayCapacity
	}
	return r.Capacity
}

func (r *ReplaySet) now() time.Time {
	if r.Now == nil {
		return time.Now()
	}
	return r.Now()
}

// Check decides on a knock whose other checks passed, without recording it:
// ErrReplay and the time mac was first accepted if it was seen,
// ErrReplayFull if the set is full, nil if Admit would accept it. A
// persistent store calls Check, writes its record, then Insert.
func (r *ReplaySet) Check(mac [MACSize]byte) (time.Time, error) {
	if t, ok := r.Seen(mac); ok {
		return t, ErrReplay
	}
	if r.n >= r.capacity() {
		return time.Time{}, ErrReplayFull
	}
	return time.Time{}, nil
}

// Admit decides on a knock whose other checks passed. If mac was seen it
// returns ErrReplay and the time it was first accepted; if the set is full
// it returns ErrReplayFull; otherwise it records mac with the current time
// and returns that time.
func (r *ReplaySet) Admit(mac [MACSize]byte) (time.Time, error) {
	if t, err := r.Check(mac); err != nil {
		return t, err
	}
	now := r.now()
	r.Insert(mac, now)
	return now, nil
}

// Seen reports whether mac was accepted before, and when, to the second.
func (r *ReplaySet) Seen(mac [MACSize]byte) (time.Time, bool) {
	i, ok := r.find(mac)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(r.slots[i].sec), 0), true
}

// Insert records mac as accepted at t, regardless of capacity: it is how a
// persistent store reloads its history. An existing entry keeps its time.
func (r *ReplaySet) Insert(mac [MACSize]byte, t time.Time) {
	if (r.n+1)*5 > len(r.slots)*4 {
		r.resize(max(2*len(r.slots), slotsFor(r.n+1), 16))
	}
	i, ok := r.find(mac)
	if ok {
		return
	}
	r.slots[i] = replaySlot{mac: mac, sec: stamp(t)}
	r.n++
}

// Reserve makes room for n more digests, so that inserting them does not
// grow the table again.
func (r *ReplaySet) Reserve(n int) {
	if want := slotsFor(r.n + n); want > len(r.slots) {
		r.resize(want)
	}
}

// Len returns the number of digests held.
func (r *ReplaySet) Len() int { return r.n }

// Cap returns the capacity in force.
func (r *ReplaySet) Cap() int { return r.capacity() }

// slotsFor is the table size that holds n digests at most 80 % full.
func slotsFor(n int) int { return n + n/4 + 1 }

func stamp(t time.Time) uint32 {
	return uint32(min(max(t.Unix(), 1), math.MaxUint32))
}

// find returns the slot holding mac, or the empty slot where it belongs.
func (r *ReplaySet) find(mac [MACSize]byte) (int, bool) {
	if len(r.slots) == 0 {
		return -1, false
	}
	// The hash is keyed: digests come from knocks, and someone holding a
	// secret could otherwise choose tags whose digests pile up in one run.
	hi, _ := bits.Mul64(maphash.Comparable(r.seed, mac), uint64(len(r.slots)))
	for i := int(hi); ; {
		s := &r.slots[i]
		if s.sec == 0 {
			return i, false
		}
		if s.mac == mac {
			return i, true
		}
		if i++; i == len(r.slots) {
			i = 0
		}
	}
}

func (r *ReplaySet) resize(n int) {
	old := r.slots
	if old == nil {
		r.seed = maphash.MakeSeed()
	}
	r.slots = make([]replaySlot, n)
	for k := range old {
		if old[k].sec != 0 {
			i, _ := r.find(old[k].mac)
			r.slots[i] = old[k]
		}
	}
}
