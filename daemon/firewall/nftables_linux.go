//go:build linux

package firewall

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/userdata"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Names of the table's objects.
const (
	nftDoorChain    = "doors"   // hook input, priority mangle: marks door traffic, claims doors
	nftProtectChain = "protect" // hook input, priority filter: drops unmarked SYNs to Protect ports
	nftSilenceChain = "silence" // hook prerouting, before defragmentation: drops knock datagrams
	nftProtectSet   = "protected"
)

// Priorities of the table's base chains. The silence chain runs before IP
// defragmentation (-400) so that a fragment of a knock is dropped before the
// kernel could time out its reassembly and answer with an ICMP error.
const (
	nftSilencePriority = -450
	nftDoorPriority    = -150 // mangle
)

// claimTTL is how long a claim element blocks rival SYNs: longer than any
// waitfor (the configuration allows at most an hour), since an armed door's
// element can live that long after the claim.
const claimTTL = time.Hour + time.Minute

// nftRcvBuf is the receive buffer of the netlink socket: a batch's
// acknowledgements must fit (the kernel counts each at about a kilobyte).
const nftRcvBuf = 4 << 20

// applyChunk bounds the doors changed in one netlink batch: a batch is one
// sendmsg, which must fit the socket's send buffer (about 200 KiB).
const applyChunk = 512

// nftState is what a started backend holds in the kernel and in user space.
type nftState struct {
	conn   *nftables.Conn // lasting: bound to the network namespace Start ran in
	table  *nftables.Table
	sets   map[string]*nftables.Set
	nflog  *nflogConn
	stop   chan struct{}
	done   chan struct{}     // closed when the upkeep routine has ended
	claims chan struct{}     // closed when the claims routine has ended (its socket is then released)
	recon  chan struct{}     // asks the upkeep routine to check the table and reconcile now
	mon    *nftables.Monitor // reports the table's deletion; nil: the tick alone
	family [2]nftFamily
}

// Start removes a table of its name left by an earlier run and creates a
// fresh one, in one batch (CLASSIC-6.9), binds the log group on which the
// kernel reports claims, and starts the upkeep routine. Everything is bound
// to the calling thread's network namespace, once: nothing later switches
// namespaces.
func (n *NFTables) Start(ctx context.Context, notify Notify) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: start: %w", nftBackend, err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.started {
		return fmt.Errorf("%s: start: already started", nftBackend)
	}
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithSockOptions(func(c *netlink.Conn) error {
		// Room for the acknowledgements of a large batch.
		return c.SetReadBuffer(nftRcvBuf)
	}))
	if err != nil {
		return fmt.Errorf("%s: start: netlink: %w", nftBackend, err)
	}
	st := &nftState{conn: conn, stop: make(chan struct{}), done: make(chan struct{}), claims: make(chan struct{}),
		recon: make(chan struct{}, 1)}
	// The log group first: if another process reads it, the table must not
	// be replaced (it may be another doormand's).
	if st.nflog, err = openNFLog(ctx, n.cfg.LogGroup); err != nil {
		conn.CloseLasting()
		return fmt.Errorf("%s: start: %w", nftBackend, err)
	}
	if err := n.createTable(st); err != nil {
		st.nflog.close()
		conn.CloseLasting()
		return fmt.Errorf("%s: start: create table inet %s: %w", nftBackend, n.cfg.Table, err)
	}
	n.state = st
	n.doors = map[uint64]*nftDoor{}
	n.armed = map[key]uint64{}
	n.claimed = map[key]uint64{}
	n.blocked = map[key]Door{}
	n.notify = notify
	n.started = true
	st.mon = n.watchTableDeletes(st)
	go n.routineClaims(st)
	go n.routineUpkeep(st)
	n.log.Debug("table ready", "table", n.cfg.Table, "mark", fmt.Sprintf("%#08x", n.cfg.Mark),
		"log_group", n.cfg.LogGroup, "protect", n.cfg.Protect, "guard", n.cfg.Guard)
	return nil
}

// createTable deletes any table of the configured name and creates the
// table with its sets, chains and rules, in one batch.
func (n *NFTables) createTable(st *nftState) error {
	c := st.conn
	t := &nftables.Table{Name: n.cfg.Table, Family: nftables.TableFamilyINet}
	c.AddTable(t) // so that the delete cannot fail when there is none
	c.DelTable(t)
	c.AddTable(t)
	st.table = t
	st.sets = map[string]*nftables.Set{}
	st.family = [2]nftFamily{ipv4Family(), ipv6Family()}
	for _, f := range st.family {
		for _, s := range f.sets(t, n.cfg) {
			if err := addSet(c, s, nil); err != nil {
				return err
			}
			st.sets[s.Name] = s
		}
	}
	accept := nftables.ChainPolicyAccept
	doors := c.AddChain(&nftables.Chain{
		Name: nftDoorChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityRef(nftDoorPriority), Policy: &accept,
	})
	for _, f := range st.family {
		for _, r := range f.doorRules(n.cfg, st.sets) {
			c.AddRule(&nftables.Rule{Table: t, Chain: doors, Exprs: r.exprs, UserData: comment(r.comment)})
		}
	}
	if n.cfg.KnockPort != 0 {
		n.addKnockRules(c, t, doors)
	}
	if len(n.cfg.Protect) > 0 {
		if err := n.addProtect(c, t); err != nil {
			return err
		}
	}
	return c.Flush()
}

// lastSetID numbers the sets the backends add. google/nftables numbers a
// set without an ID from a global counter it does not lock, a data race
// when two backends start at once (the parallel kernel tests); a set with
// an ID skips that counter. The ID only names the set within its batch.
var lastSetID atomic.Uint32

// addSet adds s to c's batch under a fresh ID.
func addSet(c *nftables.Conn, s *nftables.Set, elems []nftables.SetElement) error {
	if s.ID == 0 {
		s.ID = lastSetID.Add(1)
	}
	return c.AddSet(s, elems)
}

// addProtect queues the chain that closes the Protect ports:
//
//	tcp dport @protected tcp flags & (syn|ack) == syn meta mark & MARK != MARK drop
//
// Only packets that open a connection need the door's mark. Every other
// segment of a connection that no door admitted finds no socket and is
// answered with a RST, exactly as on a closed port, so nothing leaks. Testing
// conntrack state instead ("ct state established,related accept") was tried
// and rejected: on a host without a firewall conntrack is not running before
// doorman starts, so connections that already exist (the admin's own SSH
// session) are picked up mid-stream as "new" and cut. This rule needs no
// conntrack at all, keeps those sessions, and keeps door connections alive
// across a daemon restart. A remaining theoretical gap: a SYN-cookie ACK is
// accepted only after the listener's SYN queue overflowed, which unmarked
// SYNs cannot cause.
func (n *NFTables) addProtect(c *nftables.Conn, t *nftables.Table) error {
	ports := slices.Clone(n.cfg.Protect)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	elems := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		if p == 0 {
			return fmt.Errorf("%w: protect port 0", ErrInvalidRule)
		}
		elems = append(elems, nftables.SetElement{Key: be16pad(p)[:2]})
	}
	set := &nftables.Set{Table: t, Name: nftProtectSet, Constant: true, KeyType: nftables.TypeInetService}
	if err := addSet(c, set, elems); err != nil {
		return err
	}
	// Policy accept: this chain only closes the listed ports; everything
	// else is the admin's business.
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: nftProtectChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: protectExprs(set, n.cfg.Mark), UserData: comment("doorman protect")})
	return nil
}

// addKnockRules queues what keeps the knock port silent (CLASSIC-4.2/2,
// 4.3). Capture sees a datagram before netfilter does, so dropping costs
// the capture nothing; with a knock socket the datagrams are marked instead
// (the admin's mark line then lets them reach the socket) and only first
// fragments are dropped, so no reassembled datagram reaches it either.
func (n *NFTables) addKnockRules(c *nftables.Conn, t *nftables.Table, doors *nftables.Chain) {
	accept := nftables.ChainPolicyAccept
	silence := c.AddChain(&nftables.Chain{
		Name: nftSilenceChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookPrerouting, Priority: nftables.ChainPriorityRef(nftSilencePriority), Policy: &accept,
	})
	if !n.cfg.KnockSocket {
		c.AddRule(&nftables.Rule{Table: t, Chain: silence, Exprs: knockDropExprs(n.cfg.KnockPort), UserData: comment("doorman knock port")})
		return
	}
	for _, e := range knockFragmentExprs(n.cfg.KnockPort) {
		c.AddRule(&nftables.Rule{Table: t, Chain: silence, Exprs: e, UserData: comment("doorman knock fragments")})
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: doors, Exprs: knockMarkExprs(n.cfg.KnockPort, n.cfg.Mark), UserData: comment("doorman knock socket")})
}

// Apply brings each door to its State and returns one error per door (nil
// for success), in order. Changes are made in batches of set elements,
// each atomic in the kernel; when a batch fails, its doors are retried one
// by one so that one bad door does not fail the others, and an element that
// is already gone (an armed door the kernel expired) counts as removed.
// A door that failed is left as it was before the call.
func (n *NFTables) Apply(ctx context.Context, doors []Door) []error {
	errs := make([]error, len(doors))
	if err := ctx.Err(); err != nil {
		for i, d := range doors {
			errs[i] = doorErr(nftBackend, d, err)
		}
		return errs
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		for i, d := range doors {
			errs[i] = doorErr(nftBackend, d, ErrNotStarted)
		}
		return errs
	}
	for lo := 0; lo < len(doors); lo += applyChunk {
		hi := min(lo+applyChunk, len(doors))
		// The clock is read per batch: an element's timeout counts from
		// when the kernel gets it.
		n.applyLocked(doors[lo:hi], errs[lo:hi], time.Now())
	}
	return errs
}

// nftOp is one set-element change of a door's plan.
type nftOp struct {
	del     bool
	set     string
	key     []byte
	timeout time.Duration
}

// nftPlan is what one door's change needs from the kernel and what the
// backend records once it is done.
type nftPlan struct {
	want      Door
	ops       []nftOp
	after     nftDoor
	forget    bool // the door is closed: drop its record
	armKey    bool // the door now holds armed[key]
	unarmKey  bool // the door gives up armed[key]
	unclaim   bool // the claim element for key is gone
	keyOfDoor key
}

func (n *NFTables) applyLocked(doors []Door, errs []error, now time.Time) {
	plans := make([]*nftPlan, len(doors))
	c := n.state.conn
	queued := 0
	for i, d := range doors {
		p, err := n.planLocked(d, now)
		if err != nil {
			errs[i] = doorErr(nftBackend, d, err)
			continue
		}
		plans[i] = p
		queued += len(p.ops)
		n.queueOps(c, p.ops)
	}
	if queued > 0 {
		if err := c.Flush(); err != nil {
			// All or nothing: find the culprits one door at a time.
			for i, p := range plans {
				if p != nil {
					if err := n.runOpsTolerant(p.ops); err != nil {
						errs[i] = doorErr(nftBackend, p.want, err)
						plans[i] = nil
					}
				}
			}
		}
	}
	for _, p := range plans {
		if p != nil {
			n.commitPlanLocked(p)
		}
	}
}

// runOpsTolerant runs one door's ops in one batch, and if that fails, one
// op at a time, taking "no such element" on a delete as done.
func (n *NFTables) runOpsTolerant(ops []nftOp) error {
	c := n.state.conn
	n.queueOps(c, ops)
	if err := c.Flush(); err == nil {
		return nil
	}
	for _, op := range ops {
		n.queueOps(c, []nftOp{op})
		if err := c.Flush(); err != nil && !(op.del && errors.Is(err, unix.ENOENT)) {
			return fmt.Errorf("%s element of set %s: %w", map[bool]string{true: "delete", false: "add"}[op.del], op.set, err)
		}
	}
	return nil
}

// queueOps queues ops as one message per set and kind: every deletion
// first, then every addition (an element one door gives up may be the one
// the next door of the same key arms). A message is all or nothing.
func (n *NFTables) queueOps(c *nftables.Conn, ops []nftOp) {
	for _, del := range []bool{true, false} {
		bySet := map[string][]nftables.SetElement{}
		var order []string
		for _, op := range ops {
			if op.del != del {
				continue
			}
			if _, ok := bySet[op.set]; !ok {
				order = append(order, op.set)
			}
			bySet[op.set] = append(bySet[op.set], nftables.SetElement{Key: op.key, Timeout: op.timeout})
		}
		for _, name := range order {
			s := n.state.sets[name]
			var err error
			if del {
				err = c.SetDeleteElements(s, bySet[name])
			} else {
				err = c.SetAddElements(s, bySet[name])
			}
			if err != nil {
				// Only a malformed element fails here; Flush reports it.
				n.log.Error("cannot encode set elements", "set", name, "err", err)
			}
		}
	}
}

// planLocked works out the element changes that take door d from what the
// backend holds for it to d.State.
func (n *NFTables) planLocked(d Door, now time.Time) (*nftPlan, error) {
	if err := d.validate(); err != nil {
		return nil, err
	}
	rec := n.doors[d.ID]
	var have Door
	var cur nftDoor
	if rec != nil {
		have, cur = rec.d, *rec
	}
	k := d.key()
	p := &nftPlan{want: d, after: cur, keyOfDoor: k}
	p.after.d = d
	f := n.state.familyOf(d.Src)
	expired := !have.Expires.IsZero() && !now.Before(have.Expires)

	removeArmed := func() {
		if cur.armed && !expired {
			p.ops = append(p.ops, f.armedOp(have, cur.pinPort, true, 0))
		}
		p.after.armed = false
	}
	removeClaim := func() {
		if n.claimed[k] == d.ID {
			p.ops = append(p.ops, nftOp{del: true, set: f.claim, key: f.tripleKey(d.Src, d.Dst, d.Port)})
			p.unclaim = true
		}
	}
	removeNarrow := func() {
		if cur.narrow {
			p.ops = append(p.ops, nftOp{del: true, set: f.narrow, key: f.quadKey(d.Src, d.Dst, cur.narrowPort, d.Port)})
		}
		p.after.narrow = false
	}

	switch {
	case d.State == DoorClosed:
		if rec == nil {
			return p, nil // nothing held: closing twice is fine
		}
		removeArmed()
		removeClaim()
		removeNarrow()
		p.forget = true
		p.unarmKey = n.armed[k] == d.ID

	case d.State == DoorArmed && rec == nil:
		if d.Expires.Sub(now) < time.Millisecond {
			return nil, fmt.Errorf("%w: armed door expires %v, already past", ErrInvalidRule, d.Expires)
		}
		if other, ok := n.armed[k]; ok {
			return nil, fmt.Errorf("%w: door %d is armed for the same address and port", ErrTransition, other)
		}
		if len(n.doors) >= n.cfg.MaxDoors {
			return nil, ErrTooManyDoors
		}
		if _, ok := n.claimed[k]; ok {
			// A spent claim of an earlier door would refuse this door's SYN.
			p.ops = append(p.ops, nftOp{del: true, set: f.claim, key: f.tripleKey(d.Src, d.Dst, d.Port)})
			p.unclaim = true
		}
		p.ops = append(p.ops, f.armedOp(d, d.SrcPort, false, d.Expires.Sub(now)))
		p.after.armed = true
		p.after.pinPort = d.SrcPort
		p.armKey = true

	case d.State == DoorArmed && have.State == DoorArmed:
		// Nothing to change (an expiry change would need a new element).

	case d.State == DoorArmed && have.State == DoorClaimed:
		// Re-arm: the claimed connection never completed its handshake
		// (perhaps a spoofed SYN took the door); free the door for the
		// client's next SYN while its armed element is alive.
		if !cur.armed || expired {
			return nil, fmt.Errorf("%w: re-arm after the door expired", ErrTransition)
		}
		if d.SrcPort != cur.pinPort {
			return nil, fmt.Errorf("%w: re-arm with source port %d, armed with %d", ErrTransition, d.SrcPort, cur.pinPort)
		}
		removeClaim()
		removeNarrow()

	case d.State == DoorClaimed && have.State == DoorArmed:
		// The kernel made the claim and narrow elements itself, and
		// noteClaim recorded them.
		if !cur.narrow || cur.narrowPort != d.SrcPort {
			return nil, fmt.Errorf("%w: no claim from source port %d was reported for this door", ErrTransition, d.SrcPort)
		}

	case d.State == DoorClaimed && have.State == DoorClaimed:

	case d.State == DoorNarrow && (have.State == DoorClaimed || have.State == DoorNarrow):
		if d.SrcPort != cur.narrowPort {
			return nil, fmt.Errorf("%w: narrow to source port %d, claimed from %d", ErrTransition, d.SrcPort, cur.narrowPort)
		}
		removeArmed()
		removeClaim()
		p.unarmKey = n.armed[k] == d.ID

	default:
		return nil, fmt.Errorf("%w: %v to %v", ErrTransition, have.State, d.State)
	}
	return p, nil
}

func (n *NFTables) commitPlanLocked(p *nftPlan) {
	id := p.want.ID
	switch {
	case p.forget:
		delete(n.doors, id)
	default:
		rec := p.after
		n.doors[id] = &rec
	}
	if p.armKey {
		n.armed[p.keyOfDoor] = id
	}
	if p.unarmKey {
		delete(n.armed, p.keyOfDoor)
	}
	if p.unclaim {
		delete(n.claimed, p.keyOfDoor)
	}
}

// Close deletes the table with everything in it and stops the upkeep and
// the claim reports. It is idempotent.
func (n *NFTables) Close(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: close: %w", nftBackend, err)
	}
	n.mu.Lock()
	if !n.started {
		n.mu.Unlock()
		return nil
	}
	st := n.state
	n.started = false
	n.mu.Unlock()
	// The routines take mu; they must be stopped without holding it.
	close(st.stop)
	st.nflog.close()
	if st.mon != nil {
		st.mon.Close()
	}
	<-st.done
	<-st.claims

	n.mu.Lock()
	defer n.mu.Unlock()
	defer st.conn.CloseLasting()
	c := st.conn
	c.AddTable(st.table)
	c.DelTable(st.table)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: close: delete table inet %s: %w", nftBackend, n.cfg.Table, err)
	}
	if len(n.doors) > 0 {
		n.log.Debug("closed with doors still open", "doors", len(n.doors))
	}
	n.doors, n.armed, n.claimed, n.blocked = nil, nil, nil, nil
	n.state = nil
	return nil
}

// comment encodes text as an nftables rule comment (shown by `nft list`).
func comment(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}

// familyOf returns the sets and key layout for a's family.
func (st *nftState) familyOf(a netip.Addr) *nftFamily {
	if a.Unmap().Is4() {
		return &st.family[0]
	}
	return &st.family[1]
}

// setBlocked adds (on) or removes the door's key to or from the blocked
// set of a Guard table: while there, new connections from the door's
// client to its port are refused unless a door admits them. The script
// backend uses it while a script's accept rule for that key may be stuck
// in the firewall.
func (n *NFTables) setBlocked(d Door, on bool) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return ErrNotStarted
	}
	if !n.cfg.Guard {
		return fmt.Errorf("%s: blocking needs a guard table", nftBackend)
	}
	f := n.state.familyOf(d.Src)
	if err := n.runOpsTolerant([]nftOp{{del: !on, set: f.blocked, key: f.tripleKey(d.Src, d.Dst, d.Port)}}); err != nil {
		return err
	}
	if on {
		n.blocked[d.key()] = d
	} else {
		delete(n.blocked, d.key())
	}
	return nil
}

// Packets returns how many packets of the door's claimed connection the
// table let through: the claiming SYN counts one, a completed handshake at
// least two more (the client's ACK, then its data, FIN or RST). A door
// whose connection was never seen established uses it to tell a
// connection too short to be seen from a SYN nobody followed up (a blind
// spoof). It reads the whole narrow set, so it is for rare use.
func (n *NFTables) Packets(ctx context.Context, d Door) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.started {
		return 0, ErrNotStarted
	}
	rec := n.doors[d.ID]
	if rec == nil || !rec.narrow {
		return 0, fmt.Errorf("%w: door %d has no claimed connection", ErrUnknownRule, d.ID)
	}
	f := n.state.familyOf(d.Src)
	elems, err := n.state.conn.GetSetElements(n.state.sets[f.narrow])
	if err != nil {
		return 0, fmt.Errorf("%s: read %s: %w", nftBackend, f.narrow, err)
	}
	want := f.quadKey(d.Src, d.Dst, rec.narrowPort, d.Port)
	for _, e := range elems {
		if string(e.Key) == string(want) {
			if e.Counter == nil {
				return 0, nil
			}
			return e.Counter.Packets, nil
		}
	}
	return 0, fmt.Errorf("%w: door %d's connection is not in %s", ErrUnknownRule, d.ID, f.narrow)
}
