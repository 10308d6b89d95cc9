package protocol

import (
	"encoding/binary"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestPropertyReplaySetModel drives a ReplaySet and a map through the same
// random Insert, Check, Admit and Reserve steps, across table growth, and
// compares every answer: the set is exact (CLASSIC-5.1), keeps the first
// time to the second (CLASSIC-5.3), and is full at its capacity
// (CLASSIC-5.4/1).
func TestPropertyReplaySetModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 300).Draw(t, "capacity")
		clock := time.Unix(1_700_000_000, 0)
		r := ReplaySet{Capacity: capacity, Now: func() time.Time { clock = clock.Add(1500 * time.Millisecond); return clock }}
		model := map[[MACSize]byte]int64{}
		// Digests from a small pool so that repeats are common, spread over
		// all 16 bytes so that they hash apart.
		pool := rapid.IntRange(1, 400).Draw(t, "pool")
		digest := func(label string) [MACSize]byte {
			var m [MACSize]byte
			n := uint64(rapid.IntRange(0, pool).Draw(t, label))
			binary.LittleEndian.PutUint64(m[:], n*0x9E3779B97F4A7C15)
			binary.LittleEndian.PutUint64(m[8:], n)
			return m
		}
		for range rapid.IntRange(1, 600).Draw(t, "steps") {
			switch rapid.IntRange(0, 9).Draw(t, "op") {
			case 0:
				r.Reserve(rapid.IntRange(0, 500).Draw(t, "reserve"))
			case 1, 2:
				m := digest("insert")
				at := time.Unix(rapid.Int64Range(-5, 1<<33).Draw(t, "at"), 999)
				r.Insert(m, at)
				if _, ok := model[m]; !ok {
					model[m] = min(max(at.Unix(), 1), 1<<32-1)
				}
			default:
				m := digest("admit")
				at, err := r.Admit(m)
				first, seen := model[m]
				switch {
				case seen:
					if err != ErrReplay || at.Unix() != first {
						t.Fatalf("replay: Admit = %v, %v; want %d, ErrReplay", at.Unix(), err, first)
					}
				case len(model) >= capacity:
					if err != ErrReplayFull {
						t.Fatalf("full at %d: Admit = %v", len(model), err)
					}
				default:
					if err != nil || !at.Equal(clock) {
						t.Fatalf("fresh digest: Admit = %v, %v", at, err)
					}
					model[m] = at.Unix()
				}
			}
			if r.Len() != len(model) {
				t.Fatalf("Len %d, model %d", r.Len(), len(model))
			}
		}
		for m, first := range model {
			if at, ok := r.Seen(m); !ok || at.Unix() != first {
				t.Fatalf("Seen(%x) = %v, %v; want %d", m[:4], at, ok, first)
			}
		}
	})
}

// TestReplaySetReserveNoGrowth: after Reserve(n), n inserts do not move the
// table (a loader sizes it once).
func TestReplaySetReserveNoGrowth(t *testing.T) {
	var r ReplaySet
	r.Reserve(10_000)
	size := len(r.slots)
	var m [MACSize]byte
	for i := range 10_000 {
		binary.LittleEndian.PutUint64(m[:], uint64(i)*0x9E3779B97F4A7C15)
		r.Insert(m, time.Unix(1, 0))
	}
	if len(r.slots) != size || r.Len() != 10_000 {
		t.Fatalf("table %d -> %d slots, %d digests", size, len(r.slots), r.Len())
	}
}

func BenchmarkReplaySet(b *testing.B) {
	const n = 1 << 20
	r := ReplaySet{Capacity: 2 * n}
	r.Reserve(n)
	var m [MACSize]byte
	for i := range n {
		binary.LittleEndian.PutUint64(m[:], uint64(i)*0x9E3779B97F4A7C15)
		r.Insert(m, time.Unix(1, 0))
	}
	b.Run("miss", func(b *testing.B) {
		i := uint64(n)
		for b.Loop() {
			i++
			binary.LittleEndian.PutUint64(m[:], i*0x9E3779B97F4A7C15)
			if _, err := r.Check(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hit", func(b *testing.B) {
		i := uint64(0)
		for b.Loop() {
			i = (i + 1) % n
			binary.LittleEndian.PutUint64(m[:], i*0x9E3779B97F4A7C15)
			if _, err := r.Check(m); err != ErrReplay {
				b.Fatal(err)
			}
		}
	})
}
