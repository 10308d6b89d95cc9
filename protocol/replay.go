package protocol

import "time"

// DefaultReplayCapacity is the number of digests a ReplaySet holds when its
// Capacity is zero.
const DefaultReplayCapacity = 1_000_000

// MinReplayCapacity is the smallest capacity a configuration may ask for,
// as in 0.81's hash-archive-size.
const MinReplayCapacity = 1000

// ReplaySet is the exact replay decision (CLASSIC-5): it remembers the MAC of
// every accepted knock and refuses any knock whose MAC it has seen.
//
// Classic knocks carry no time, so no entry can ever be forgotten safely.
// When the set is full it therefore refuses every new knock (ErrReplayFull)
// instead of evicting an old digest, which would make that old knock
// replayable (CLASSIC-5.4). The daemon warns long before that happens.
//
// The zero value is ready to use with DefaultReplayCapacity and time.Now.
// A ReplaySet is not safe for concurrent use.
type ReplaySet struct {
	// Capacity bounds the number of digests; 0 means DefaultReplayCapacity.
	Capacity int
	// Now is the clock that stamps accepted knocks; nil means time.Now.
	Now func() time.Time

	seen map[[MACSize]byte]int64 // digest -> unix nanoseconds first accepted
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

// Admit decides on a knock whose other checks passed. If mac was seen it
// returns ErrReplay and the time it was first accepted; if the set is full
// it returns ErrReplayFull; otherwise it records mac with the current time
// and returns that time.
func (r *ReplaySet) Admit(mac [MACSize]byte) (time.Time, error) {
	if t, ok := r.seen[mac]; ok {
		return time.Unix(0, t), ErrReplay
	}
	if len(r.seen) >= r.capacity() {
		return time.Time{}, ErrReplayFull
	}
	now := r.now()
	r.Insert(mac, now)
	return now, nil
}

// Seen reports whether mac was accepted before, and when.
func (r *ReplaySet) Seen(mac [MACSize]byte) (time.Time, bool) {
	t, ok := r.seen[mac]
	return time.Unix(0, t), ok
}

// Insert records mac as accepted at t, regardless of capacity: it is how a
// persistent store reloads its history. An existing entry keeps its time.
func (r *ReplaySet) Insert(mac [MACSize]byte, t time.Time) {
	if r.seen == nil {
		r.seen = make(map[[MACSize]byte]int64)
	}
	if _, ok := r.seen[mac]; !ok {
		r.seen[mac] = t.UnixNano()
	}
}

// Delete forgets mac. Only safe when no knock with this MAC can verify any
// more, for example after its group's secret changed.
func (r *ReplaySet) Delete(mac [MACSize]byte) { delete(r.seen, mac) }

// Len returns the number of digests held.
func (r *ReplaySet) Len() int { return len(r.seen) }

// Cap returns the capacity in force.
func (r *ReplaySet) Cap() int { return r.capacity() }
