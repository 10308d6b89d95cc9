//go:build linux

package firewall

import (
	"encoding/binary"
	"net/netip"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// TCP header: the flags byte and the two flags that mark a connection opening.
const (
	tcpFlagsOffset = 13
	tcpSYN         = 0x02
	tcpACK         = 0x10
)

// Registers. reg (NFT_REG_1, 16 bytes) holds single values; set keys are
// concatenations built in consecutive 32-bit registers from regKey
// (NFT_REG32_00) on, each field padded to a multiple of 4 bytes, which is
// also how the kernel lays out a concatenated set key.
const (
	reg    = 1
	regKey = unix.NFT_REG32_00
)

// nftFamily is one IP family's sets, key layout and header offsets.
type nftFamily struct {
	proto   byte // NFPROTO_IPV4 or NFPROTO_IPV6
	addrLen uint32
	srcOff  uint32 // source address offset in the network header
	dstOff  uint32
	addr    nftables.SetDatatype
	// Set names.
	broad, pinned, claim, narrow, blocked string
}

func ipv4Family() nftFamily {
	return nftFamily{proto: unix.NFPROTO_IPV4, addrLen: 4, srcOff: 12, dstOff: 16, addr: nftables.TypeIPAddr,
		broad: "broad4", pinned: "pinned4", claim: "claim4", narrow: "narrow4", blocked: "blocked4"}
}

func ipv6Family() nftFamily {
	return nftFamily{proto: unix.NFPROTO_IPV6, addrLen: 16, srcOff: 8, dstOff: 24, addr: nftables.TypeIP6Addr,
		broad: "broad6", pinned: "pinned6", claim: "claim6", narrow: "narrow6", blocked: "blocked6"}
}

// Register numbers of the key fields: source and destination address, then
// the first and second port.
func (f *nftFamily) regSrc() uint32   { return regKey }
func (f *nftFamily) regDst() uint32   { return regKey + f.addrLen/4 }
func (f *nftFamily) regPort1() uint32 { return regKey + 2*f.addrLen/4 }
func (f *nftFamily) regPort2() uint32 { return f.regPort1() + 1 }

// sets returns the family's door sets: four, and with cfg.Guard a fifth
// of the keys whose new connections are refused while a script's rule for
// them could not be removed.
func (f *nftFamily) sets(t *nftables.Table, cfg NFTConfig) []*nftables.Set {
	triple := nftables.MustConcatSetType(f.addr, f.addr, nftables.TypeInetService)
	quad := nftables.MustConcatSetType(f.addr, f.addr, nftables.TypeInetService, nftables.TypeInetService)
	size := uint32(cfg.MaxDoors)
	sets := []*nftables.Set{
		{Table: t, Name: f.broad, KeyType: triple, HasTimeout: true, Size: size},
		{Table: t, Name: f.pinned, KeyType: quad, HasTimeout: true, Size: size},
		{Table: t, Name: f.claim, KeyType: triple, HasTimeout: true, Dynamic: true, Size: size},
		// The counter tells a connection that came and went (three packets
		// or more) from a claiming SYN nobody followed up (see Packets).
		{Table: t, Name: f.narrow, KeyType: quad, Dynamic: true, Size: size, Counter: true},
	}
	if cfg.Guard {
		sets = append(sets, &nftables.Set{Table: t, Name: f.blocked, KeyType: triple})
	}
	return sets
}

// tripleKey is the key of broad and claim elements: src . dst . port.
func (f *nftFamily) tripleKey(src, dst netip.Addr, port uint16) []byte {
	b := make([]byte, 0, 2*f.addrLen+4)
	b = append(b, src.Unmap().AsSlice()...)
	b = append(b, dst.Unmap().AsSlice()...)
	return append(b, be16pad(port)...)
}

// quadKey is the key of pinned and narrow elements: src . dst . sport . dport.
func (f *nftFamily) quadKey(src, dst netip.Addr, sport, dport uint16) []byte {
	b := make([]byte, 0, 2*f.addrLen+8)
	b = append(b, src.Unmap().AsSlice()...)
	b = append(b, dst.Unmap().AsSlice()...)
	b = append(b, be16pad(sport)...)
	return append(b, be16pad(dport)...)
}

// parseQuad reads a narrow or pinned key.
func (f *nftFamily) parseQuad(k []byte) (src, dst netip.Addr, sport, dport uint16, ok bool) {
	if len(k) != int(2*f.addrLen+8) {
		return
	}
	src, _ = netip.AddrFromSlice(k[:f.addrLen])
	dst, _ = netip.AddrFromSlice(k[f.addrLen : 2*f.addrLen])
	sport = binary.BigEndian.Uint16(k[2*f.addrLen:])
	dport = binary.BigEndian.Uint16(k[2*f.addrLen+4:])
	return src, dst, sport, dport, true
}

// armedOp adds (or deletes) an armed door's element: broad when any source
// port may claim it, pinned when only pinPort may.
func (f *nftFamily) armedOp(d Door, pinPort uint16, del bool, timeout time.Duration) nftOp {
	if pinPort == 0 {
		return nftOp{del: del, set: f.broad, key: f.tripleKey(d.Src, d.Dst, d.Port), timeout: timeout}
	}
	return nftOp{del: del, set: f.pinned, key: f.quadKey(d.Src, d.Dst, pinPort, d.Port), timeout: timeout}
}

// be16pad is a port as a concatenated key field: big endian, padded to 4 bytes.
func be16pad(p uint16) []byte { return []byte{byte(p >> 8), byte(p), 0, 0} }

type nftRule struct {
	comment string
	exprs   []expr.Any
}

// doorRules returns the family's rules of the doors chain, in order:
// the claimed connections, the claims through armed doors (any source port,
// then pinned), and with cfg.Guard the refusal of rival SYNs.
func (f *nftFamily) doorRules(cfg NFTConfig, sets map[string]*nftables.Set) []nftRule {
	rules := []nftRule{{"doorman: claimed connections", f.narrowExprs(sets[f.narrow], cfg.Mark)}}
	rules = append(rules,
		nftRule{"doorman: claim an armed door", f.claimExprs(sets, false, cfg)},
		nftRule{"doorman: claim a pinned door", f.claimExprs(sets, true, cfg)})
	if cfg.Guard {
		rules = append(rules,
			nftRule{"doorman: refuse rival SYNs", f.guardExprs(sets[f.broad])},
			nftRule{"doorman: refuse SYNs a stuck rule would admit", f.guardExprs(sets[f.blocked])})
	}
	return rules
}

// tcpOf matches TCP packets of the family.
func (f *nftFamily) tcpOf() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{f.proto}},
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}},
	}
}

// synOnly matches a segment with SYN set and ACK clear: only such a segment
// may claim a door, so a bare ACK or a RST cannot take one.
func synOnly() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{tcpSYN}},
	}
}

// loadAddrs loads source and destination address into the key registers.
func (f *nftFamily) loadAddrs() []expr.Any {
	return []expr.Any{
		&expr.Payload{DestRegister: f.regSrc(), Base: expr.PayloadBaseNetworkHeader, Offset: f.srcOff, Len: f.addrLen},
		&expr.Payload{DestRegister: f.regDst(), Base: expr.PayloadBaseNetworkHeader, Offset: f.dstOff, Len: f.addrLen},
	}
}

// loadPorts loads the TCP ports into the key's port fields: the source
// port (if withSport) then the destination port.
func (f *nftFamily) loadPorts(withSport bool) []expr.Any {
	dport := &expr.Payload{DestRegister: f.regPort1(), Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
	if !withSport {
		return []expr.Any{dport}
	}
	dport.DestRegister = f.regPort2()
	return []expr.Any{
		&expr.Payload{DestRegister: f.regPort1(), Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
		dport,
	}
}

// markAccept sets the door mark and ends this table's chain; the admin's
// chains still run and let the mark through.
func markAccept(mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(^mark),
			Xor:  binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg},
		&expr.Verdict{Kind: expr.VerdictAccept},
	}
}

// narrowExprs: every segment of a claimed connection.
//
//	ip saddr . ip daddr . tcp sport . tcp dport @narrow4 meta mark set meta mark | MARK accept
func (f *nftFamily) narrowExprs(narrow *nftables.Set, mark uint32) []expr.Any {
	e := f.tcpOf()
	e = append(e, f.loadAddrs()...)
	e = append(e, f.loadPorts(true)...)
	e = append(e, &expr.Lookup{SourceRegister: f.regSrc(), SetName: narrow.Name, SetID: narrow.ID})
	return append(e, markAccept(mark)...)
}

// claimExprs: the SYN that claims an armed door (pinned: from the door's
// source port only).
//
//	tcp flags & (syn|ack) == syn ip saddr . ip daddr . tcp dport @broad4
//	add @claim4 { ip saddr . ip daddr . tcp dport timeout 1h1m limit rate 1/week burst 1 packets }
//	add @narrow4 { ip saddr . ip daddr . tcp sport . tcp dport }
//	log group G meta mark set meta mark | MARK accept
//
// The claim element's token bucket decides the race: it is created with
// one token, refills once a week, and is updated under a lock, so when
// SYNs from several source ports arrive together on several CPUs exactly
// one passes; the others stop at the add (the expression breaks) and get
// no mark.
func (f *nftFamily) claimExprs(sets map[string]*nftables.Set, pinned bool, cfg NFTConfig) []expr.Any {
	e := f.tcpOf()
	e = append(e, synOnly()...)
	e = append(e, f.loadAddrs()...)
	if pinned {
		e = append(e, f.loadPorts(true)...)
		e = append(e, &expr.Lookup{SourceRegister: f.regSrc(), SetName: f.pinned, SetID: sets[f.pinned].ID})
	}
	e = append(e, f.loadPorts(false)...)
	if !pinned {
		e = append(e, &expr.Lookup{SourceRegister: f.regSrc(), SetName: f.broad, SetID: sets[f.broad].ID})
	}
	e = append(e, &expr.Dynset{SrcRegKey: f.regSrc(), SetName: f.claim, SetID: sets[f.claim].ID,
		Operation: unix.NFT_DYNSET_OP_ADD, Timeout: claimTTL,
		Exprs: []expr.Any{&expr.Limit{Type: expr.LimitTypePkts, Rate: 1, Unit: expr.LimitTimeWeek, Burst: 1}}})
	e = append(e, f.loadPorts(true)...)
	e = append(e, &expr.Dynset{SrcRegKey: f.regSrc(), SetName: f.narrow, SetID: sets[f.narrow].ID,
		Operation: unix.NFT_DYNSET_OP_ADD})
	// Queue threshold 1: the kernel otherwise batches log messages for up
	// to a second (or 100 messages), and the daemon would learn of the
	// claim that late.
	e = append(e, &expr.Log{Key: 1<<unix.NFTA_LOG_GROUP | 1<<unix.NFTA_LOG_SNAPLEN | 1<<unix.NFTA_LOG_PREFIX | 1<<unix.NFTA_LOG_QTHRESHOLD,
		Group: cfg.LogGroup, Snaplen: nflogSnaplen, QThreshold: 1, Data: []byte(nflogPrefix)})
	return append(e, markAccept(cfg.Mark)...)
}

// guardExprs: a SYN for an armed door that did not win it (set broad), or
// for a key whose script rule could not be removed (set blocked), is
// dropped here, whatever else would accept it.
//
//	tcp flags & (syn|ack) == syn ip saddr . ip daddr . tcp dport @broad4 drop
func (f *nftFamily) guardExprs(broad *nftables.Set) []expr.Any {
	e := f.tcpOf()
	e = append(e, synOnly()...)
	e = append(e, f.loadAddrs()...)
	e = append(e, f.loadPorts(false)...)
	e = append(e, &expr.Lookup{SourceRegister: f.regSrc(), SetName: broad.Name, SetID: broad.ID})
	return append(e, &expr.Verdict{Kind: expr.VerdictDrop})
}

// protectExprs: see addProtect.
func protectExprs(set *nftables.Set, mark uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Lookup{SourceRegister: reg, SetName: set.Name, SetID: set.ID},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 1, Mask: []byte{tcpSYN | tcpACK}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{tcpSYN}},
		&expr.Meta{Key: expr.MetaKeyMARK, Register: reg},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(mark),
			Xor:  binaryutil.NativeEndian.PutUint32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: binaryutil.NativeEndian.PutUint32(mark)},
		&expr.Verdict{Kind: expr.VerdictDrop},
	}
}

// udpTo matches UDP datagrams to port (on a fragment other than the first,
// the transport header cannot be read and the match fails).
func udpTo(port uint16) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.IPPROTO_UDP}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: binaryutil.BigEndian.PutUint16(port)},
	}
}

// knockDropExprs: every datagram to the knock port, whole or first fragment.
//
//	meta l4proto udp th dport KNOCK drop
func knockDropExprs(port uint16) []expr.Any {
	return append(udpTo(port), &expr.Verdict{Kind: expr.VerdictDrop})
}

// knockFragmentExprs: first fragments to the knock port, for each family.
//
//	meta nfproto ipv4 ip frag-off & 0x3fff != 0 meta l4proto udp th dport KNOCK drop
//	meta nfproto ipv6 exthdr frag exists meta l4proto udp th dport KNOCK drop
func knockFragmentExprs(port uint16) [][]expr.Any {
	v4 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.NFPROTO_IPV4}},
		&expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 6, Len: 2},
		&expr.Bitwise{SourceRegister: reg, DestRegister: reg, Len: 2, Mask: []byte{0x3f, 0xff}, Xor: []byte{0, 0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg, Data: []byte{0, 0}},
	}
	v6 := []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: reg},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{unix.NFPROTO_IPV6}},
		&expr.Exthdr{DestRegister: reg, Type: unix.IPPROTO_FRAGMENT, Offset: 0, Len: 1,
			Flags: unix.NFT_EXTHDR_F_PRESENT, Op: expr.ExthdrOpIpv6},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg, Data: []byte{1}},
	}
	var out [][]expr.Any
	for _, pre := range [][]expr.Any{v4, v6} {
		e := append(pre, udpTo(port)...)
		out = append(out, append(e, &expr.Verdict{Kind: expr.VerdictDrop}))
	}
	return out
}

// knockMarkExprs: knock datagrams get the mark, so that the admin's mark
// line lets them reach the knock socket.
//
//	meta l4proto udp th dport KNOCK meta mark set meta mark | MARK accept
func knockMarkExprs(port uint16, mark uint32) []expr.Any {
	return append(udpTo(port), markAccept(mark)...)
}
