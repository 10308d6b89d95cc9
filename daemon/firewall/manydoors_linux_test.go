//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/google/nftables"
)

// TestIntegrationManyDoors arms bursts of 1,000 and 20,000 doors (as many
// valid knocks at once would) and checks that every one is gone from the
// kernel within waitfor plus one second without any help from the daemon,
// then closes a second burst explicitly (CLASSIC-6.3/2, CLASSIC-6.12). It prints what a door costs the
// backend in memory and what arming and closing cost in time:
//
//	go test ./daemon/firewall -run ManyDoors -v
func TestIntegrationManyDoors(t *testing.T) {
	for _, count := range []int{1000, 20000} {
		t.Run(fmt.Sprint(count), func(t *testing.T) {
			n := newSerialTestNet(t)
			n.dropAllNFT(t, true)
			b := NewNFTables(NFTConfig{})
			n.start(t, b)
			waitFor := 2 * time.Second
			if count > 5000 {
				waitFor = 10 * time.Second // arming 20,000 takes a while
			}
			burst := func(base uint64) []Door {
				doors := make([]Door, count)
				exp := time.Now().Add(waitFor)
				for i := range doors {
					// Distinct clients (198.19.x.y) knocking for one port.
					src := netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)})
					doors[i] = Door{ID: base + uint64(i), Src: src, Dst: n.srv4, Port: testPort, State: DoorArmed, Expires: exp}
				}
				return doors
			}

			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			doors := burst(1)
			t0 := time.Now()
			n.apply(t, b, doors...)
			armed := time.Since(t0)
			runtime.GC()
			runtime.ReadMemStats(&after)
			perDoor := (int64(after.HeapAlloc) - int64(before.HeapAlloc)) / int64(count)
			if got := n.countElements(t, b, "broad4"); got != count {
				t.Fatalf("%d doors armed, the kernel holds %d", count, got)
			}
			deadline := t0.Add(waitFor + time.Second)
			for n.countElements(t, b, "broad4") != 0 {
				if time.Now().After(deadline) {
					t.Fatalf("armed doors still in the kernel %v after waitfor", time.Since(t0)-waitFor)
				}
				time.Sleep(100 * time.Millisecond)
			}
			gone := time.Since(t0)
			// The daemon learns of the expiries on its own clock and closes
			// its records: nothing left to delete in the kernel.
			for i := range doors {
				doors[i].State = DoorClosed
			}
			n.apply(t, b, doors...)

			second := burst(uint64(count) + 1)
			n.apply(t, b, second...)
			for i := range second {
				second[i].State = DoorClosed
			}
			t1 := time.Now()
			n.apply(t, b, second...)
			closed := time.Since(t1)
			if got := n.countElements(t, b, "broad4"); got != 0 {
				t.Fatalf("%d elements left after closing every door", got)
			}
			t.Logf("%d doors: armed in %v (%v a door), all expired in the kernel %v after arming (waitfor %v), "+
				"closing %d explicitly took %v; backend memory %d bytes a door",
				count, armed.Round(time.Millisecond), (armed / time.Duration(count)).Round(time.Microsecond),
				gone.Round(time.Millisecond), waitFor, count, closed.Round(time.Millisecond), perDoor)
		})
	}
}

// countElements counts the live elements of one of b's sets.
func (n *testNet) countElements(t *testing.T, b *NFTables, set string) int {
	t.Helper()
	var elems []nftables.SetElement
	err := n.do(func(context.Context) error {
		b.mu.Lock()
		defer b.mu.Unlock()
		if b.state == nil {
			return errors.New("not started")
		}
		var err error
		elems, err = b.state.conn.GetSetElements(b.state.sets[set])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return len(elems)
}
