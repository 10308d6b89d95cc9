//go:build linux

package firewall

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/google/nftables"
)

// reconcileEvery is how many upkeep ticks pass between reconciliations of
// the narrow sets when nothing asks for one sooner.
const reconcileEvery = 5

// errTableGone is the fault reported when the table or part of it vanished.
var errTableGone = errors.New("doorman's nftables table was removed or damaged (a firewall reload?)")

// routineClaims forwards the kernel's claim reports until the log socket is
// closed.
func (n *NFTables) routineClaims(st *nftState) {
	defer close(st.claims)
	for {
		claims, err := st.nflog.receive()
		select {
		case <-st.stop:
			return
		default:
		}
		if errors.Is(err, errNFLogLost) {
			n.notify.fault(Fault{Op: "read claim reports", Err: err})
			select {
			case st.recon <- struct{}{}:
			default:
			}
			continue
		}
		if err != nil {
			n.notify.fault(Fault{Op: "read claim reports", Err: err})
			// A closed socket ends the routine; anything else is retried
			// after a pause rather than spun on.
			select {
			case <-st.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		now := time.Now()
		for _, c := range claims {
			c.Time = now
			if n.noteClaim(c) {
				n.notify.claim(c)
			}
		}
	}
}

// noteClaim records what the kernel did for a claim: a claim element for
// the key and a narrow element for the connection. A claim no armed door
// owns (the door was closed while the SYN was on its way) is undone at
// once, so no stale claim element can refuse the next door of that key; it
// is reported all the same, for the daemon to count. It returns whether to
// report c.
func (n *NFTables) noteClaim(c Claim) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return false
	}
	k := key{src: c.Src, dst: c.Dst, port: c.Port}
	f := n.state.familyOf(c.Src)
	if id, ok := n.armed[k]; ok {
		if rec := n.doors[id]; rec != nil && !rec.narrow && (rec.pinPort == 0 || rec.pinPort == c.SrcPort) {
			rec.narrow, rec.narrowPort = true, c.SrcPort
			n.claimed[k] = id
			return true
		}
	}
	ops := []nftOp{
		{del: true, set: f.claim, key: f.tripleKey(c.Src, c.Dst, c.Port)},
		{del: true, set: f.narrow, key: f.quadKey(c.Src, c.Dst, c.SrcPort, c.Port)},
	}
	if _, ok := n.claimed[k]; ok {
		ops = ops[1:] // the key's claim belongs to a live door
	}
	if err := n.runOpsTolerant(ops); err != nil {
		n.log.Warn("cannot undo a claim no door owns", "src", c.Src, "src_port", c.SrcPort, "port", c.Port, "err", err)
	}
	return true
}

// watchTableDeletes asks the upkeep routine to check the table as soon as
// the kernel reports doorman's table deleted (a "flush ruleset", as
// Debian's nftables.service does at every start or reload), rather than at
// the next tick: with protect, every moment without the table is a moment
// the protected ports are open. The monitor has a netlink socket of its
// own (the lasting one carries the backend's requests and replies); if it
// cannot be had, or fails later, the tick stands in. It ends with the
// returned monitor's Close.
func (n *NFTables) watchTableDeletes(st *nftState) *nftables.Monitor {
	mc, err := nftables.New()
	if err != nil {
		n.log.Debug("no nftables monitor: the table is checked every tick", "err", err)
		return nil
	}
	// Every event: nftables v0.3.0's Monitor filters any narrower choice
	// with (flags&1)<<type, which drops everything but "any".
	mon := nftables.NewMonitor(nftables.WithMonitorAction(nftables.MonitorActionAny),
		nftables.WithMonitorObject(nftables.MonitorObjectAny))
	events, err := mc.AddMonitor(mon)
	if err != nil {
		n.log.Debug("no nftables monitor: the table is checked every tick", "err", err)
		return nil
	}
	go func() {
		for ev := range events {
			if ev.Error != nil {
				n.log.Debug("nftables monitor ended: the table is checked every tick", "err", ev.Error)
				continue // the library closes the channel after an error
			}
			if t, ok := ev.Data.(*nftables.Table); ok && ev.Type == nftables.MonitorEventTypeDelTable &&
				t.Name == n.cfg.Table && t.Family == nftables.TableFamilyINet {
				select {
				case st.recon <- struct{}{}:
				default:
				}
			}
		}
	}()
	return mon
}

// routineUpkeep checks the table every Sweep, restores it when it is gone,
// and reconciles the narrow sets with the doors now and then.
func (n *NFTables) routineUpkeep(st *nftState) {
	defer close(st.done)
	t := time.NewTicker(n.cfg.Sweep)
	defer t.Stop()
	for tick := 1; ; tick++ {
		select {
		case <-st.stop:
			return
		case <-t.C:
		case <-st.recon:
			tick = 0
		}
		if n.restoreIfDamaged(st) {
			tick = 0 // restored: reconcile right away
		}
		if tick%reconcileEvery == 0 {
			n.reconcile(st)
		}
	}
}

// restoreIfDamaged recreates the table with every open door if it, one of
// its sets or one of its chains is missing. It reports whether it did.
func (n *NFTables) restoreIfDamaged(st *nftState) bool {
	n.mu.Lock()
	if !n.started || n.state != st {
		n.mu.Unlock()
		return false
	}
	intact, err := n.intactLocked(st)
	if err != nil || intact {
		n.mu.Unlock()
		if err != nil {
			n.notify.fault(Fault{Op: "check table", Err: err})
		}
		return false
	}
	err = n.restoreLocked(st)
	n.mu.Unlock()
	if err != nil {
		n.notify.fault(Fault{Op: "restore table", Err: fmt.Errorf("%w; restoring failed: %v", errTableGone, err)})
		return false
	}
	n.notify.fault(Fault{Op: "restore table", Err: errTableGone, Repaired: true})
	return true
}

// intactLocked reports whether the table and all its sets and base chains
// exist.
func (n *NFTables) intactLocked(st *nftState) (bool, error) {
	// A dump of the tables, because asking for a missing table's sets
	// fails with an error the library does not let callers recognise.
	tables, err := st.conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(tables, func(t *nftables.Table) bool { return t.Name == st.table.Name }) {
		return false, nil
	}
	sets, err := st.conn.GetSets(st.table)
	if err != nil {
		return false, err
	}
	have := map[string]bool{}
	for _, s := range sets {
		have[s.Name] = true
	}
	for name := range st.sets {
		if !have[name] {
			return false, nil
		}
	}
	chains, err := st.conn.ListChainsOfTableFamily(nftables.TableFamilyINet)
	if err != nil {
		return false, err
	}
	want := map[string]bool{nftDoorChain: true}
	if n.cfg.KnockPort != 0 {
		want[nftSilenceChain] = true
	}
	if len(n.cfg.Protect) > 0 {
		want[nftProtectChain] = true
	}
	for _, c := range chains {
		if c.Table != nil && c.Table.Name == st.table.Name {
			delete(want, c.Name)
		}
	}
	return len(want) == 0, nil
}

// restoreLocked recreates the table and puts back every door: armed doors
// whose time is not up, and the connections of claimed and narrow doors.
// A claimed door's armed element is not put back: its claim element is gone
// with the table, so a rival SYN could claim the door a second time.
func (n *NFTables) restoreLocked(st *nftState) error {
	if err := n.createTable(st); err != nil {
		return err
	}
	n.claimed = map[key]uint64{}
	now := time.Now()
	c := st.conn
	for _, rec := range n.doors {
		d := rec.d
		f := st.familyOf(d.Src)
		if rec.armed && d.State == DoorArmed && d.Expires.Sub(now) >= time.Millisecond {
			n.queueOps(c, []nftOp{f.armedOp(d, rec.pinPort, false, d.Expires.Sub(now))})
		} else {
			rec.armed = false
		}
		if rec.narrow {
			n.queueOps(c, []nftOp{{set: f.narrow, key: f.quadKey(d.Src, d.Dst, rec.narrowPort, d.Port)}})
		}
	}
	for _, d := range n.blocked {
		f := st.familyOf(d.Src)
		n.queueOps(c, []nftOp{{set: f.blocked, key: f.tripleKey(d.Src, d.Dst, d.Port)}})
	}
	return c.Flush()
}

// reconcile compares the narrow sets with the doors: an element of an armed
// door's key is a claim whose report was lost (it is reported now); an
// element no door owns is removed; an element a door owns but the kernel
// lost is put back.
func (n *NFTables) reconcile(st *nftState) {
	var recovered []Claim
	n.mu.Lock()
	if !n.started || n.state != st {
		n.mu.Unlock()
		return
	}
	type quad struct {
		src, dst     netip.Addr
		sport, dport uint16
	}
	owned := map[quad]*nftDoor{}
	for _, rec := range n.doors {
		if rec.narrow {
			owned[quad{rec.d.Src.Unmap(), rec.d.Dst.Unmap(), rec.narrowPort, rec.d.Port}] = rec
		}
	}
	var ops []nftOp
	for i := range st.family {
		f := &st.family[i]
		elems, err := st.conn.GetSetElements(st.sets[f.narrow])
		if err != nil {
			n.mu.Unlock()
			n.notify.fault(Fault{Op: "reconcile " + f.narrow, Err: err})
			return
		}
		for _, e := range elems {
			src, dst, sport, dport, ok := f.parseQuad(e.Key)
			if !ok {
				continue
			}
			q := quad{src, dst, sport, dport}
			if _, ok := owned[q]; ok {
				delete(owned, q)
				continue
			}
			k := key{src, dst, dport}
			if id, ok := n.armed[k]; ok {
				if rec := n.doors[id]; rec != nil && !rec.narrow && (rec.pinPort == 0 || rec.pinPort == sport) {
					rec.narrow, rec.narrowPort = true, sport
					n.claimed[k] = id
					recovered = append(recovered, Claim{Src: src, Dst: dst, SrcPort: sport, Port: dport, Time: time.Now(), Recovered: true})
					continue
				}
			}
			ops = append(ops, nftOp{del: true, set: f.narrow, key: e.Key})
			if _, ok := n.claimed[k]; !ok {
				ops = append(ops, nftOp{del: true, set: f.claim, key: f.tripleKey(src, dst, dport)})
			}
		}
	}
	for q := range owned {
		f := st.familyOf(q.src)
		ops = append(ops, nftOp{set: f.narrow, key: f.quadKey(q.src, q.dst, q.sport, q.dport)})
	}
	var err error
	if len(ops) > 0 {
		if err = n.runOpsTolerant(ops); err == nil {
			n.log.Info("reconciled door connections with the kernel", "changes", len(ops))
		}
	}
	n.mu.Unlock()
	if err != nil {
		n.notify.fault(Fault{Op: "reconcile doors", Err: err})
	}
	for _, c := range recovered {
		n.notify.claim(c)
	}
}
