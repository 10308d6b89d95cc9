package capture

import (
	"fmt"

	"github.com/doorman-project/doorman/protocol"
	"golang.org/x/net/bpf"
)

// Filter parameters.
const (
	// skfNetOff is the kernel's SKF_NET_OFF: absolute loads at
	// skfNetOff+k read byte k of the network header, whatever the link
	// header length.
	skfNetOff = 0xFFF00000 // -0x100000 as uint32
	// packetHost is PACKET_HOST, the pkt_type of a frame addressed to
	// this host; broadcast, multicast, other hosts' (promiscuous) and
	// outgoing frames have other types.
	packetHost = 0
	// snapLen is the most of one frame the filter passes to user space;
	// the kernel cuts it to the frame's length.
	snapLen = 1 << 16
)

// filterSpec describes the classic BPF program to build.
type filterSpec struct {
	// base is the offset of the network header: the link header length
	// in ModeRaw, 0 in ModeNetwork, or skfNetOff.
	base uint32
	// extProto selects the IP version by skb->protocol (the ancillary
	// load) instead of the version nibble at base.
	extProto bool
	// socket builds the program for a UDP socket (ModeSocket): the data
	// then starts at the UDP header, and the IP header is read at
	// skfNetOff (base and extProto are ignored).
	socket bool
	port   uint16
}

// buildFilter assembles the socket filter: the kernel-side prefilter that
// passes, and only passes, what may be a knock, so that junk costs no
// system call and no copy. It passes a frame addressed to this host
// (PACKET_HOST) holding
//   - an IPv4 packet without options that is not a fragment, or an IPv6
//     packet without extension headers (CLASSIC-4.3),
//   - whose UDP datagram goes to the knock port,
//   - and whose payload may be a knock by its first byte and length, the
//     rule of mayBeKnock (CLASSIC-2.3, 2.6).
//
// Everything else is dropped before user space, uncounted.
func buildFilter(fs filterSpec) ([]bpf.RawInstruction, error) {
	var a asm
	net, udp := fs.base, fs.base // where the IP and the UDP header are read, UDP plus X
	a.add(bpf.LoadExtension{Num: bpf.ExtType})
	a.jeq(packetHost, "", "reject")
	if fs.socket {
		net, udp = skfNetOff, 0
		fs.extProto = true
	}
	if fs.extProto {
		a.add(bpf.LoadExtension{Num: bpf.ExtProto})
		a.jeq(etherTypeIPv4, "v4", "")
		a.jeq(etherTypeIPv6, "v6", "reject")
	} else {
		a.add(bpf.LoadAbsolute{Off: net, Size: 1})
		a.add(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0xf0})
		a.jeq(0x40, "v4", "")
		a.jeq(0x60, "v6", "reject")
	}

	udpAt := func(offset uint32) { // X = offset of the UDP header from udp
		if fs.socket {
			offset = 0
		}
		a.add(bpf.LoadConstant{Dst: bpf.RegX, Val: offset})
	}
	a.label("v4")
	a.add(bpf.LoadAbsolute{Off: net, Size: 1})
	a.jeq(0x40|ipv4MinHeaderLen/4, "", "reject") // version 4, no options
	a.add(bpf.LoadAbsolute{Off: net + 9, Size: 1})
	a.jeq(protoUDP, "", "reject")
	a.add(bpf.LoadAbsolute{Off: net + 6, Size: 2})
	a.jset(ipv4FlagMF|ipv4FragOffMask, "reject", "")
	udpAt(ipv4MinHeaderLen)
	a.ja("udp")

	a.label("v6")
	a.add(bpf.LoadAbsolute{Off: net + 6, Size: 1})
	a.jeq(protoUDP, "", "reject") // extension headers and fragments
	udpAt(ipv6HeaderLen)

	a.label("udp")
	a.add(bpf.LoadIndirect{Off: udp + 2, Size: 2})
	a.jeq(uint32(fs.port), "", "reject")
	a.add(bpf.LoadIndirect{Off: udp + 4, Size: 2})
	a.add(bpf.ALUOpConstant{Op: bpf.ALUOpSub, Val: udpHeaderLen}) // payload length; wraps when short
	a.add(bpf.StoreScratch{Src: bpf.RegA, N: 0})
	a.add(bpf.LoadIndirect{Off: udp + udpHeaderLen, Size: 1})
	a.jeq(protocol.ModernMagic, "modern", "")
	a.jge('0', "", "reject")
	a.jgt('9', "reject", "")
	a.add(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
	a.jge(protocol.MinClassicLen, "", "reject")
	a.jgt(protocol.MaxClassicLen+1, "reject", "accept")
	a.label("modern")
	a.add(bpf.LoadScratch{Dst: bpf.RegA, N: 0})
	a.jge(protocol.MinModernLen, "", "reject")
	a.jgt(protocol.MaxModernLen, "reject", "accept")

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
	always        bool   // ja: ifTrue is the target
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

func (a *asm) jif(cond bpf.JumpTest, val uint32, ifTrue, ifNot string) {
	a.jumps = append(a.jumps, asmJump{at: len(a.ins), ifTrue: ifTrue, ifNot: ifNot})
	a.add(bpf.JumpIf{Cond: cond, Val: val})
}

// Conditional jumps: to ifTrue when A compares so with val, else to ifNot.
func (a *asm) jeq(val uint32, ifTrue, ifNot string) {
	a.jif(bpf.JumpEqual, val, ifTrue, ifNot)
}

func (a *asm) jset(val uint32, ifTrue, ifNot string) {
	a.jif(bpf.JumpBitsSet, val, ifTrue, ifNot)
}

func (a *asm) jge(val uint32, ifTrue, ifNot string) {
	a.jif(bpf.JumpGreaterOrEqual, val, ifTrue, ifNot)
}

func (a *asm) jgt(val uint32, ifTrue, ifNot string) {
	a.jif(bpf.JumpGreaterThan, val, ifTrue, ifNot)
}

// ja jumps to label unconditionally.
func (a *asm) ja(label string) {
	a.jumps = append(a.jumps, asmJump{at: len(a.ins), ifTrue: label, always: true})
	a.add(bpf.Jump{})
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
		if j.always {
			to, ok := a.labels[j.ifTrue]
			if !ok || to <= j.at {
				return nil, fmt.Errorf("bpf: bad jump target %q", j.ifTrue)
			}
			a.ins[j.at] = bpf.Jump{Skip: uint32(to - j.at - 1)}
			continue
		}
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
