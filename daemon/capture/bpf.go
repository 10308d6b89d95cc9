package capture

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Filter parameters.
const (
	// skfNetOff is the kernel's SKF_NET_OFF: absolute loads at
	// skfNetOff+k read byte k of the network header, whatever the link
	// header length.
	skfNetOff = 0xFFF00000 // -0x100000 as uint32
	// packetOutgoing is PACKET_OUTGOING, the pkt_type of frames this host
	// sends; loopback would otherwise show every packet twice.
	packetOutgoing = 4
	// snapLen is the most of one frame the filter passes to user space.
	snapLen = 1 << 18
)

// filterSpec describes the classic BPF program to build.
type filterSpec struct {
	// base is added to every network-header offset: the link header length
	// in ModeRaw, 0 in ModeNetwork, or skfNetOff.
	base uint32
	// extProto selects the IP version by skb->protocol (the ancillary
	// load) instead of the version nibble at base.
	extProto bool
	port     uint16
	syn      bool
}

// buildFilter assembles the socket filter that passes, and only passes,
// candidate packets and the oddities the daemon counts:
//   - IPv4 UDP to the knock port (header options skipped by IHL);
//   - IPv4 UDP non-first fragments (their port cannot be known);
//   - with syn, IPv4 TCP with SYN set and ACK clear (first fragments only);
//   - IPv6 UDP to the knock port, also behind one hop-by-hop, routing or
//     destination-options header; IPv6 UDP fragments;
//   - with syn, IPv6 TCP SYN without extension headers.
//
// Frames the host sends (PACKET_OUTGOING) are always dropped.
func buildFilter(fs filterSpec) ([]bpf.RawInstruction, error) {
	b := fs.base
	var a asm
	a.add(bpf.LoadExtension{Num: bpf.ExtType})
	a.jeq(packetOutgoing, "reject", "")
	if fs.extProto {
		a.add(bpf.LoadExtension{Num: bpf.ExtProto})
		a.jeq(etherTypeIPv4, "v4", "")
		a.jeq(etherTypeIPv6, "v6", "reject")
	} else {
		a.add(bpf.LoadAbsolute{Off: b, Size: 1})
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		a.jeq(0x40, "v4", "")
		a.jeq(0x60, "v6", "reject")
	}

	a.label("v4")
	a.add(bpf.LoadAbsolute{Off: b + 9, Size: 1})
	if fs.syn {
		a.jeq(ProtoTCP, "v4tcp", "")
	}
	a.jeq(ProtoUDP, "", "reject")
	a.add(bpf.LoadAbsolute{Off: b + 6, Size: 2})
	a.jset(ipv4FragOffMask, "accept", "")
	a.add(bpf.LoadMemShift{Off: b})
	a.add(bpf.LoadIndirect{Off: b + 2, Size: 2})
	a.jeq(uint32(fs.port), "accept", "reject")
	if fs.syn {
		a.label("v4tcp")
		a.add(bpf.LoadAbsolute{Off: b + 6, Size: 2})
		a.jset(ipv4FragOffMask, "reject", "")
		a.add(bpf.LoadMemShift{Off: b})
		a.add(bpf.LoadIndirect{Off: b + 13, Size: 1})
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: TCPFlagSYN | TCPFlagACK})
		a.jeq(TCPFlagSYN, "accept", "reject")
	}

	a.label("v6")
	a.add(bpf.LoadAbsolute{Off: b + 6, Size: 1})
	a.jeq(ProtoUDP, "v6udp", "")
	if fs.syn {
		a.jeq(ProtoTCP, "v6tcp", "")
	}
	a.jeq(ipv6NextFragment, "v6frag", "")
	a.jeq(ipv6NextHopByHop, "v6ext", "")
	a.jeq(ipv6NextRouting, "v6ext", "")
	a.jeq(ipv6NextDestOpts, "v6ext", "reject")
	a.label("v6udp")
	a.add(bpf.LoadAbsolute{Off: b + ipv6HeaderLen + 2, Size: 2})
	a.jeq(uint32(fs.port), "accept", "reject")
	if fs.syn {
		a.label("v6tcp")
		a.add(bpf.LoadAbsolute{Off: b + ipv6HeaderLen + 13, Size: 1})
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: TCPFlagSYN | TCPFlagACK})
		a.jeq(TCPFlagSYN, "accept", "reject")
	}
	a.label("v6frag")
	a.add(bpf.LoadAbsolute{Off: b + ipv6HeaderLen, Size: 1}) // fragment header's next header
	a.jeq(ProtoUDP, "accept", "reject")
	a.label("v6ext")
	a.add(bpf.LoadAbsolute{Off: b + ipv6HeaderLen, Size: 1}) // extension's next header
	a.jeq(ProtoUDP, "", "reject")
	a.add(bpf.LoadAbsolute{Off: b + ipv6HeaderLen + 1, Size: 1}) // length in 8-octet units, minus one
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 1})
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 3})
	a.add(bpf.TAX{})
	a.add(bpf.LoadIndirect{Off: b + ipv6HeaderLen + 2, Size: 2})
	a.jeq(uint32(fs.port), "accept", "reject")

	a.label("accept")
	a.add(bpf.RetConstant{Val: snapLen})
	a.label("reject")
	a.add(bpf.RetConstant{Val: 0})
	return a.assemble()
}

// asm is a tiny assembler with named jump targets: x/net/bpf only knows
// relative skips, which are easy to get wrong by hand.
type asm struct {
	ins    []bpf.Instruction
	jumps  []asmJump
	labels map[string]int
	err    error
}

type asmJump struct {
	at            int
	ifTrue, ifNot string // "" = the next instruction
}

func (a *asm) add(i bpf.Instruction) { a.ins = append(a.ins, i) }

func (a *asm) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	if _, dup := a.labels[name]; dup && a.err == nil {
		a.err = fmt.Errorf("bpf: duplicate label %q", name)
	}
	a.labels[name] = len(a.ins)
}

func (a *asm) jeq(val uint32, ifTrue, ifNot string) {
	a.jumps = append(a.jumps, asmJump{len(a.ins), ifTrue, ifNot})
	a.add(bpf.JumpIf{Cond: bpf.JumpEqual, Val: val})
}

func (a *asm) jset(val uint32, ifTrue, ifNot string) {
	a.jumps = append(a.jumps, asmJump{len(a.ins), ifTrue, ifNot})
	a.add(bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: val})
}

func (a *asm) skip(from int, label string) (uint8, error) {
	if label == "" {
		return 0, nil
	}
	to, ok := a.labels[label]
	if !ok {
		return 0, fmt.Errorf("bpf: undefined label %q", label)
	}
	d := to - from - 1
	if d < 0 || d > 255 {
		return 0, fmt.Errorf("bpf: jump to %q out of range (%d)", label, d)
	}
	return uint8(d), nil
}

func (a *asm) assemble() ([]bpf.RawInstruction, error) {
	if a.err != nil {
		return nil, a.err
	}
	for _, j := range a.jumps {
		ji := a.ins[j.at].(bpf.JumpIf)
		var err error
		if ji.SkipTrue, err = a.skip(j.at, j.ifTrue); err != nil {
			return nil, err
		}
		if ji.SkipFalse, err = a.skip(j.at, j.ifNot); err != nil {
			return nil, err
		}
		a.ins[j.at] = ji
	}
	return bpf.Assemble(a.ins)
}
