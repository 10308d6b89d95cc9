//go:build linux

package conformance

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"
)

// Cases for section 5: replay protection.
func replayCases() []*Case {
	return []*Case{
		{ID: "5.1/replay-same-source", Requirement: "CLASSIC-5.1", Level: "MUST", Target: TargetDaemon,
			Description: "an accepted knock sent again from the same address opens nothing",
			Run: func(e *Env) error {
				k := knockFor(portA)
				return acceptThenReplay(e, k, k, e.Topo.Client, "replay from the same address")
			}},
		{ID: "5.1/replay-other-source", Requirement: "CLASSIC-5.1", Level: "MUST", Target: TargetDaemon,
			Description: "an accepted knock sent again from another address in the guest's list opens nothing",
			Run: func(e *Env) error {
				k := knockFor(portA)
				return acceptThenReplay(e, k, k, e.Topo.Client2, "replay from another allowed address")
			}},
		{ID: "2.5/case-variant-replay", Requirement: "CLASSIC-2.5", Level: "MUST", Target: TargetDaemon,
			Also:        []string{"CLASSIC-5.2"},
			Description: "the upper-case spelling of an accepted knock is the same knock: a replay",
			Run: func(e *Env) error {
				k := knockFor(portA)
				i := strings.LastIndexByte(k, ' ')
				upper := k[:i] + strings.ToUpper(k[i:])
				return acceptThenReplay(e, k, upper, e.Topo.Client, "upper-case variant of an accepted knock")
			}},
		{ID: "5.4/full-store-refuses", Requirement: "CLASSIC-5.4/1", Level: "MUST", Target: TargetDaemon,
			Also:        []string{"CLASSIC-5.4"},
			Description: "with the store at its capacity (hash-archive-size 1000: 999 digests imported from a 0.81 archive, or 999 knocks where the implementation does not import, then one more), a fresh valid knock is refused; the 1000th is accepted",
			Timeout:     60 * time.Second, Prepare: prepareFullStore, Run: runFullStore},
		{ID: "5.6/import-0.81-archive", Requirement: "CLASSIC-5.6", Level: "SHOULD", Target: TargetDaemon,
			Description: "a knock recorded in a 0.81 hash archive (24-byte records) found at the replay store's path at start is refused; a fresh one opens",
			Prepare:     prepareLegacyArchive, Run: runLegacyArchive},
		{ID: "5.5/replay-after-restart", Requirement: "CLASSIC-5.5/1", Level: "MUST", Target: TargetDaemon,
			Description: "a knock accepted before a restart (stop signal, start) is refused after it",
			Run: func(e *Env) error {
				return replayAcross(e, func() error {
					if err := e.StopDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(true)
				})
			}},
		{ID: "5.5/replay-after-kill9", Requirement: "CLASSIC-5.5/2", Level: "MUST", Target: TargetDaemon,
			Description: "a knock whose door opened is refused after the daemon is killed with SIGKILL and started again",
			Run: func(e *Env) error {
				return replayAcross(e, func() error {
					if err := e.KillDaemon(); err != nil {
						return err
					}
					return e.StartDaemon(false)
				})
			}},
	}
}

// acceptThenReplay sends first from the first client, checks the door
// opens, then sends again from `from` and checks nothing opens for it.
func acceptThenReplay(e *Env, first, again string, from Host, why string) error {
	if err := e.knockSettle(e.Topo.Client, first); err != nil {
		return err
	}
	if err := e.expectOpen(e.Topo.Client, portA, "first knock"); err != nil {
		return err
	}
	return e.rejected(from, again, portA, why)
}

func replayAcross(e *Env, restart func() error) error {
	k := knockFor(portA)
	if err := e.knockSettle(e.Topo.Client, k); err != nil {
		return err
	}
	if err := e.expectOpen(e.Topo.Client, portA, "knock before the restart"); err != nil {
		return err
	}
	if err := restart(); err != nil {
		return err
	}
	return e.rejected(e.Topo.Client, k, portA, "replay after the restart")
}

// fillPace spreads the knocks that fill the store when it cannot be
// filled by import: a burst of fillBurst, then a pause, so that the
// daemon's receive buffer never overflows.
const (
	fillBurst = 50
	fillPause = 40 * time.Millisecond
)

// prepareFullStore plants a 0.81 hash archive holding capacity-1 digests
// at the replay store's path, so that an implementation that imports it
// (CLASSIC-5.6) starts one knock short of full without a thousand doors
// to open and close. runFullStore checks the import took and fills the
// store with knocks otherwise.
func prepareFullStore(e *Env) error {
	n := e.model.ReplayCapacity - 1
	knocks := make([]string, n)
	for i := range knocks {
		knocks[i] = knockFor(portA)
	}
	b, err := legacyArchive(e.model.ReplayCapacity, time.Now().Add(-time.Hour), knocks...)
	if err != nil {
		return err
	}
	e.values["archived-knock"] = knocks[0]
	return os.WriteFile(e.model.ReplayFile, b, 0o600)
}

func runFullStore(e *Env) error {
	t := e.Topo
	n := e.model.ReplayCapacity
	// One archived knock (a replay if the archive was imported) and the
	// n-th knock (it fits either way).
	if _, err := e.knock(t.Client2, e.values["archived-knock"]); err != nil {
		return err
	}
	if _, err := e.knock(t.Client, knockFor(portB)); err != nil {
		return err
	}
	time.Sleep(settle)
	var imported bool
	var fits error
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		imported = e.expectClosed(t.Client2, portA, "") == nil
	}()
	go func() {
		defer wg.Done()
		fits = e.expectOpen(t.Client, portB, fmt.Sprintf("a knock that still fits a store of %d", n))
	}()
	wg.Wait()
	if fits != nil {
		return fmt.Errorf("before the store is full: %w", fits)
	}
	how := fmt.Sprintf("%d digests imported from a 0.81 archive and 1 knock", n-1)
	if !imported {
		// No import: the store holds the two knocks just accepted.
		how = fmt.Sprintf("%d accepted knocks", n)
		for i := 0; i < n-2; i++ {
			if _, err := e.knock(t.Client, knockFor(portA)); err != nil {
				return err
			}
			if i%fillBurst == fillBurst-1 {
				time.Sleep(fillPause)
			}
		}
		// Let the daemon work through them before the knock that tells.
		time.Sleep(time.Second)
	}
	if err := e.knockSettle(t.Client2, knockFor(portB)); err != nil {
		return err
	}
	if err := e.expectClosed(t.Client2, portB, fmt.Sprintf("a fresh knock with the store full: %s, capacity %d", how, n)); err != nil {
		return fmt.Errorf("%w; the store must refuse every new knock when full, not evict a digest", err)
	}
	if !e.DaemonAlive() {
		return mismatch("daemon running with a full store", "it exited")
	}
	return nil
}

// legacyRecordSize is a 0.81 archive record on a 64-bit build: the digest
// and a little-endian 64-bit time_t (CLASSIC-5.6).
const legacyRecordSize = 24

// legacyArchive returns a 0.81 hash archive of slots records holding the
// digests of knocks, each in the slot 0.81 would use (the sum of the
// digest's four 32-bit words in host order, masked to 31 bits, modulo the
// table size) or, where two collide, the next free one: 0.81 would have
// lost one of them, and an importer reads every used slot.
func legacyArchive(slots int, at time.Time, knocks ...string) ([]byte, error) {
	if len(knocks) > slots {
		return nil, fmt.Errorf("%d knocks do not fit %d slots", len(knocks), slots)
	}
	b := make([]byte, slots*legacyRecordSize)
	used := make([]bool, slots)
	for _, k := range knocks {
		mac, err := knockDigest(k)
		if err != nil {
			return nil, err
		}
		var sum uint32
		for i := 0; i < 16; i += 4 {
			sum += binary.LittleEndian.Uint32(mac[i:])
		}
		slot := int(sum&0x7fffffff) % slots
		for used[slot] {
			slot = (slot + 1) % slots
		}
		used[slot] = true
		off := slot * legacyRecordSize
		copy(b[off:], mac)
		binary.LittleEndian.PutUint64(b[off+16:], uint64(at.Unix()))
	}
	return b, nil
}

func knockDigest(k string) ([]byte, error) {
	i := strings.LastIndexByte(k, ' ')
	mac, err := hex.DecodeString(k[i+1:])
	if err != nil || len(mac) != 16 {
		return nil, fmt.Errorf("not a classic knock: %q", k)
	}
	return mac, nil
}

func prepareLegacyArchive(e *Env) error {
	k := knockFor(portA)
	b, err := legacyArchive(e.model.ReplayCapacity, time.Now().Add(-time.Hour), k)
	if err != nil {
		return err
	}
	if err := os.WriteFile(e.model.ReplayFile, b, 0o600); err != nil {
		return err
	}
	e.values["legacy-knock"] = k
	return nil
}

func runLegacyArchive(e *Env) error {
	k := e.values["legacy-knock"]
	if k == "" {
		return setupErr(errors.New("no 0.81 archive was planted"))
	}
	t := e.Topo
	if _, err := e.knock(t.Client2, k); err != nil {
		return err
	}
	if _, err := e.knock(t.Client, knockFor(portA)); err != nil {
		return err
	}
	time.Sleep(settle)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		errs[0] = e.expectClosed(t.Client2, portA, "knock recorded in the 0.81 archive")
	}()
	go func() { defer wg.Done(); errs[1] = e.expectOpen(t.Client, portA, "control: a fresh knock") }()
	wg.Wait()
	return errors.Join(errs...)
}
