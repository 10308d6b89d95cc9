//go:build linux

package firewall

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/vishvananda/netns"
	"slices"
	"strconv"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

const (
	nftBackend      = "nftables"
	nftDoorChain    = "input"   // priority mangle: marks door packets
	nftProtectChain = "protect" // priority filter: drops unmarked packets to Protect ports
	nftSilenceChain = "silence" // priority filter: drops datagrams to the knock port
	nftProtectSet   = "protected"
	nftProtectSetID = 1 // batch-local id; door sets use ids derived from rule ids (> 1)
)

// TCP header: the flags byte and the two flags that mark a connection opening.
const (
	tcpFlagsOffset = 13
	tcpSYN         = 0x02
	tcpACK         = 0x10
)

// reg is the nftables register all our expressions work in (NFT_REG_1, 16 bytes
// wide, enough for an IPv6 address).
const reg = 1

func (n *NFTables) conn() (*nftables.Conn, error) {
	var opts []nftables.ConnOption
	switch {
	case n.cfg.NetNS != 0:
		opts = append(opts, nftables.WithNetNSFd(n.cfg.NetNS))
	case n.ns != 0:
		opts = append(opts, nftables.WithNetNSFd(n.ns))
	}
	return nftables.New(opts...)
}

func (n *NFTables) table() *nftables.Table {
	return &nftables.Table{Name: n.cfg.Table, Family: nftables.TableFamilyINet}
}

func (n *NFTables) doorChain() *nftables.Chain {
	return &nftables.Chain{Name: nftDoorChain, Table: n.table()}
}

// Start removes a table left behind by an earlier run and creates a fresh one,
// in one batch: "add table" (a no-op if it exists) makes the following
// "delete table" safe when there is nothing to delete.
func (n *NFTables) Start(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: start: %w", nftBackend, err)
	}
	n.life.Lock()
	defer n.life.Unlock()
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("%s: start: %w", nftBackend, err)
	}
	t := n.table()
	c.AddTable(t)
	c.DelTable(t)
	c.AddTable(t)
	accept := nftables.ChainPolicyAccept
	c.AddChain(&nftables.Chain{
		Name: nftDoorChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityMangle, Policy: &accept,
	})
	if n.cfg.KnockPort != 0 {
		n.addSilence(c, t)
	}
	if len(n.cfg.Protect) > 0 {
		if err := n.addProtect(c, t); err != nil {
			return fmt.Errorf("%s: start: %w", nftBackend, err)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: start: create table inet %s: %w", nftBackend, n.cfg.Table, err)
	}
	if err := n.syncHandle(c); err != nil {
		return fmt.Errorf("%s: start: read handles of table inet %s: %w", nftBackend, n.cfg.Table, err)
	}
	n.mu.Lock()
	n.live.reset()
	n.mu.Unlock()
	if n.delStop == nil {
		// The batcher runs on threads of its own: pin it to the namespace
		// Start ran in (which tests switch per thread).
		if n.cfg.NetNS == 0 {
			h, err := netns.Get()
			if err != nil {
				return fmt.Errorf("%s: start: %w", nftBackend, err)
			}
			n.ns = int(h)
		}
		n.delq, n.delStop, n.delDone = make(chan nftDelete), make(chan struct{}), make(chan struct{})
		go n.routineDeleteBatches(n.delq, n.delStop, n.delDone)
	}
	n.started = true
	n.log.Debug("table ready", "table", n.cfg.Table, "mark", fmt.Sprintf("%#08x", n.cfg.Mark), "protect", n.cfg.Protect)
	return nil
}

// addSilence queues a chain that drops every datagram to the knock port:
//
//	meta l4proto udp udp dport KNOCK drop
//
// Capture sees a knock before netfilter does, so this costs nothing, and it
// keeps the kernel from answering knocks with ICMP port-unreachable, which
// would reveal the host (CLASSIC-4.2/2).
func (n *NFTables) addSilence(c *nftables.Conn, t *nftables.Table) {
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: nftSilenceChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, UserData: comment("doorman knock port"), Exprs: []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(n.cfg.KnockPort)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}})
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
// across a daemon restart (which recreates the table without their narrow
// rules). A remaining theoretical gap: a SYN-cookie ACK is accepted only after
// the listener's SYN queue overflowed, which unmarked SYNs cannot cause.
func (n *NFTables) addProtect(c *nftables.Conn, t *nftables.Table) error {
	ports := slices.Clone(n.cfg.Protect)
	slices.Sort(ports)
	ports = slices.Compact(ports)
	elems := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		if p == 0 {
			return fmt.Errorf("%w: protect port 0", ErrInvalidRule)
		}
		elems = append(elems, nftables.SetElement{Key: binaryutil.BigEndian.PutUint16(p)})
	}
	set := &nftables.Set{Table: t, ID: nftProtectSetID, Name: nftProtectSet, Constant: true, KeyType: nftables.TypeInetService}
	if err := c.AddSet(set, elems); err != nil {
		return err
	}
	// Policy accept: this chain only closes the listed ports; everything
	// else is the admin's business.
	accept := nftables.ChainPolicyAccept
	ch := c.AddChain(&nftables.Chain{
		Name: nftProtectChain, Table: t, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookInput, Priority: nftables.ChainPriorityFilter, Policy: &accept,
	})
	exprs := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: set.Name, SetID: set.ID},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{tcpSYN}},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(n.cfg.Mark),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(n.cfg.Mark)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
	c.AddRule(&nftables.Rule{Table: t, Chain: ch, Exprs: exprs, UserData: comment("doorman protect")})
	return nil
}

// Add adds the rule and, for a broad rule, its one-element set, in one batch.
//
// Deleting a rule needs its kernel handle, and v0.3.0 of the library drops
// the kernel's echo that carries it. Reading the chain back after every add
// costs time in proportion to the open doors, so the handle is predicted
// instead: the kernel numbers a table's chains, sets and rules from one
// counter, and doorman is the table's only writer, so with Adds serialised
// the next handles are known. Each rule also carries a unique comment
// (userdata); if a prediction is ever wrong, Delete finds the rule by it.
func (n *NFTables) Add(ctx context.Context, r Rule) error {
	return ruleErr(nftBackend, "add", r, n.add(ctx, r))
}

func (n *NFTables) add(ctx context.Context, r Rule) error {
	if err := r.validate(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	n.life.RLock()
	defer n.life.RUnlock()
	if !n.started {
		return ErrNotStarted
	}
	// Group commit: a burst of knocks (many doors opening at once) shares
	// netlink batches. Whoever holds addMu commits everything queued so
	// far, its own request or not; a lone Add waits for nothing.
	req := &nftAdd{r: r, done: make(chan error, 1)}
	n.mu.Lock()
	n.nextID++
	req.id = n.nextID
	n.pendingAdds = append(n.pendingAdds, req)
	n.mu.Unlock()
	n.addMu.Lock()
	n.mu.Lock()
	batch := n.pendingAdds
	n.pendingAdds = nil
	n.mu.Unlock()
	if len(batch) > 0 {
		n.commitAdds(batch)
	}
	n.addMu.Unlock()
	return <-req.done
}

// commitAdds adds batch in one netlink batch, with predicted handles, and
// reports to each request. A batch is all or nothing, so if it fails each
// request is tried alone to find the culprit. Called with addMu held.
func (n *NFTables) commitAdds(batch []*nftAdd) {
	c, err := n.conn()
	if err != nil {
		for _, req := range batch {
			req.done <- err
		}
		return
	}
	t := n.table()
	handle := n.nextHandle
	entries := make([]nftEntry, 0, len(batch))
	queued := make([]*nftAdd, 0, len(batch))
	for _, req := range batch {
		var set *nftables.Set
		e := nftEntry{tag: comment("doorman#" + strconv.FormatUint(req.id, 10))}
		if req.r.Broad() {
			set = &nftables.Set{
				Table: t, ID: uint32(req.id%(1<<31)) + nftProtectSetID + 1, Name: "door_" + strconv.FormatUint(req.id, 10),
				KeyType: nftables.TypeInetService, Dynamic: true, Size: 1,
			}
			if err := c.AddSet(set, nil); err != nil {
				req.done <- err
				continue
			}
			e.set = set.Name
			handle++
		}
		c.AddRule(&nftables.Rule{Table: t, Chain: n.doorChain(), Exprs: n.doorExprs(req.r, set), UserData: e.tag})
		e.handle = handle
		handle++
		entries = append(entries, e)
		queued = append(queued, req)
	}
	if len(queued) == 0 {
		return
	}
	if err := c.Flush(); err != nil {
		// An aborted batch may still have used up handles.
		if serr := n.syncHandle(c); serr != nil {
			n.log.Warn("cannot re-read handles", "err", serr)
		}
		if len(queued) == 1 {
			queued[0].done <- err
			return
		}
		for _, req := range queued {
			n.commitAdds([]*nftAdd{req})
		}
		return
	}
	n.nextHandle = handle
	n.mu.Lock()
	for i, req := range queued {
		n.live.push(req.r, entries[i])
	}
	n.mu.Unlock()
	for _, req := range queued {
		req.done <- nil
	}
}

// syncHandle learns the table's next handle: it adds a probe rule, reads
// the handle the kernel gave it, and deletes it. Called with addMu held, or
// before any Add.
func (n *NFTables) syncHandle(c *nftables.Conn) error {
	t := n.table()
	tag := comment("doorman handle probe")
	c.AddRule(&nftables.Rule{Table: t, Chain: n.doorChain(), Exprs: []expr.Any{&expr.Counter{}}, UserData: tag})
	if err := c.Flush(); err != nil {
		return err
	}
	rules, err := c.GetRules(t, n.doorChain())
	if err != nil {
		return err
	}
	for _, r := range rules {
		if bytes.Equal(r.UserData, tag) {
			if err := c.DelRule(r); err != nil {
				return err
			}
			if err := c.Flush(); err != nil {
				return err
			}
			n.nextHandle = r.Handle + 1
			return nil
		}
	}
	return errors.New("probe rule not found")
}

// checkHandles makes sure every predicted handle in batch is the rule
// with its comment (one read of the chain per batch, off the knock path),
// so a wrong prediction can never delete another door's rule.
func (n *NFTables) checkHandles(batch []nftDelete) {
	c, err := n.conn()
	if err != nil {
		return
	}
	rules, err := c.GetRules(n.table(), n.doorChain())
	if err != nil {
		return // the delete itself will report trouble
	}
	byHandle := make(map[uint64][]byte, len(rules))
	byTag := make(map[string]uint64, len(rules))
	for _, r := range rules {
		byHandle[r.Handle] = r.UserData
		byTag[string(r.UserData)] = r.Handle
	}
	for i := range batch {
		e := &batch[i].e
		if bytes.Equal(byHandle[e.handle], e.tag) {
			continue
		}
		if h, ok := byTag[string(e.tag)]; ok {
			n.log.Warn("rule handle was mispredicted; using the one its comment names", "predicted", e.handle, "actual", h)
			e.handle = h
		}
	}
}

// findHandle looks a rule up by its comment, for when a predicted handle
// turned out wrong.
func (n *NFTables) findHandle(tag []byte) (uint64, error) {
	c, err := n.conn()
	if err != nil {
		return 0, err
	}
	rules, err := c.GetRules(n.table(), n.doorChain())
	if err != nil {
		return 0, err
	}
	for _, r := range rules {
		if bytes.Equal(r.UserData, tag) {
			return r.Handle, nil
		}
	}
	return 0, errors.New("rule not found in the chain")
}

// doorExprs builds
//
//	[iifname IF] ip[6] saddr SRC ip[6] daddr DST tcp [sport SPORT] dport DPORT
//	[add @door_N { tcp sport }] meta mark set meta mark | MARK accept
//
// For a broad rule the dynamic set of size 1 takes the first SYN's source
// port; the kernel refuses a second element (the expression breaks), so only
// that one connection is marked. The accept ends this chain only (the
// admin's chains still run and let the mark through): without it one SYN
// would go on to claim the sets of every other door for the same address
// and port, and those doors would admit nothing (CLASSIC-6.7).
func (n *NFTables) doorExprs(r Rule, set *nftables.Set) []expr.Any {
	var exprs []expr.Any
	if r.matchesIface() {
		name := make([]byte, ifNameSize)
		copy(name, r.Iface)
		exprs = append(exprs,
			&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: reg},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: name})
	}
	src, dst := r.src(), r.dst()
	proto, srcOff, dstOff := byte(unix.NFPROTO_IPV4), uint32(12), uint32(16)
	if !r.is4() {
		proto, srcOff, dstOff = unix.NFPROTO_IPV6, 8, 24
	}
	exprs = append(exprs,
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: srcOff, Len: uint32(src.BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: src.AsSlice()},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: dstOff, Len: uint32(dst.BitLen() / 8)},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: dst.AsSlice()},
	)
	if !r.Broad() {
		exprs = append(exprs,
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, r.SrcPort)})
	}
	exprs = append(exprs,
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binary.BigEndian.AppendUint16(nil, r.DstPort)})
	if set != nil {
		exprs = append(exprs,
			&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Dynset{SrcRegKey: reg, SetName: set.Name, SetID: set.ID, Operation: unix.NFT_DYNSET_OP_ADD})
	}
	return append(exprs,
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^n.cfg.Mark),
			Xor:  binaryutil.NativeEndian.PutUint32(n.cfg.Mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg},
		&expr.Verdict{Kind: expr.VerdictAccept},
	)
}

// Delete removes the rule and its set in one batch.
func (n *NFTables) Delete(ctx context.Context, r Rule) error {
	return ruleErr(nftBackend, "delete", r, n.delete(ctx, r))
}

func (n *NFTables) delete(ctx context.Context, r Rule) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	n.life.RLock()
	defer n.life.RUnlock()
	if !n.started {
		return ErrNotStarted
	}
	// Take the entry out while the kernel works, and put it back if it
	// fails, so no lock is held across the (slow) deletion.
	n.mu.Lock()
	e, ok := n.live.peek(r)
	if ok {
		n.live.pop(r)
	}
	n.mu.Unlock()
	if !ok {
		return ErrUnknownRule
	}
	req := nftDelete{e: e, done: make(chan error, 1)}
	n.delq <- req
	if err := <-req.done; err != nil {
		n.mu.Lock()
		n.live.push(r, e)
		n.mu.Unlock()
		return err
	}
	return nil
}

// nftDeleteWindow is how long the deleter gathers deletions into one batch.
// Every commit that deletes a rule or set makes the kernel wait for an RCU
// grace period (about 10 ms here) while holding the nftables commit lock, so
// every other door's Add waits too. One batch per window bounds those stalls
// however many doors close; the price is that a rule lingers up to this long
// after its door closed (harmless: a broad rule is one-shot by then, and a
// narrow rule's connection is over).
const nftDeleteWindow = 100 * time.Millisecond

// routineDeleteBatches commits queued deletions, a batch per window, until
// stop is closed and the queue is empty.
func (n *NFTables) routineDeleteBatches(delq chan nftDelete, stop, done chan struct{}) {
	defer close(done)
	for {
		var batch []nftDelete
		select {
		case req := <-delq:
			batch = append(batch, req)
		case <-stop:
			return
		}
		timer := time.NewTimer(nftDeleteWindow)
	gather:
		for {
			select {
			case req := <-delq:
				batch = append(batch, req)
			case <-timer.C:
				break gather
			case <-stop:
				timer.Stop()
				break gather
			}
		}
		n.checkHandles(batch)
		entries := make([]nftEntry, len(batch))
		for i, req := range batch {
			entries[i] = req.e
		}
		if err := n.deleteEntries(entries...); err == nil {
			for _, req := range batch {
				req.done <- err
			}
			continue
		}
		// A batch is all or nothing: find the culprit one by one, and
		// look up the handle of any rule whose predicted one was wrong.
		for _, req := range batch {
			err := n.deleteEntries(req.e)
			if err != nil {
				if h, ferr := n.findHandle(req.e.tag); ferr == nil && h != req.e.handle {
					n.log.Warn("rule handle was mispredicted; deleting by its comment", "predicted", req.e.handle, "actual", h)
					req.e.handle = h
					err = n.deleteEntries(req.e)
				}
			}
			req.done <- err
		}
	}
}

func (n *NFTables) deleteEntries(es ...nftEntry) error {
	c, err := n.conn()
	if err != nil {
		return err
	}
	t := n.table()
	for _, e := range es {
		if err := c.DelRule(&nftables.Rule{Table: t, Chain: n.doorChain(), Handle: e.handle}); err != nil {
			return err
		}
		if e.set != "" {
			c.DelSet(&nftables.Set{Table: t, Name: e.set})
		}
	}
	return c.Flush()
}

// Close deletes the table with everything in it. It is idempotent (the same
// add-then-delete batch as Start).
func (n *NFTables) Close(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: close: %w", nftBackend, err)
	}
	n.life.Lock()
	defer n.life.Unlock()
	if !n.started {
		return nil
	}
	// No Delete can be in flight (they hold life for reading).
	close(n.delStop)
	<-n.delDone
	n.delq, n.delStop, n.delDone = nil, nil, nil
	defer func() {
		if n.ns != 0 {
			h := netns.NsHandle(n.ns)
			h.Close()
			n.ns = 0
		}
	}()
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("%s: close: %w", nftBackend, err)
	}
	t := n.table()
	c.AddTable(t)
	c.DelTable(t)
	if err := c.Flush(); err != nil {
		return fmt.Errorf("%s: close: delete table inet %s: %w", nftBackend, n.cfg.Table, err)
	}
	n.mu.Lock()
	if left := n.live.len(); left > 0 {
		n.log.Debug("closed with doors still open", "rules", left)
	}
	n.live.reset()
	n.mu.Unlock()
	n.started = false
	return nil
}

// comment encodes text as an nftables rule comment (shown by `nft list`).
func comment(text string) []byte {
	return userdata.AppendString(nil, userdata.TypeComment, text)
}
