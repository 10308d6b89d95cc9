package capture

import "encoding/binary"

// Layout of a TPACKET_V2 receive ring (linux/if_packet.h). The ring is an
// array of fixed-size frames. The kernel writes each packet into the next
// frame it owns (tp_status TP_STATUS_KERNEL) and hands that frame over at
// once by setting TP_STATUS_USER; user space reads it and hands it back.
// Unlike TPACKET_V3, whose blocks reach user space only when full or when
// a retire timeout of at least a millisecond expires, nothing waits for
// more packets. Fields are in host byte order.
const (
	// struct tpacket2_hdr.
	tp2StatusOff  = 0  // tp_status
	tp2LenOff     = 4  // tp_len
	tp2SnaplenOff = 8  // tp_snaplen
	tp2MacOff     = 12 // tp_mac
	tp2VlanTCIOff = 24 // tp_vlan_tci (16 bits)
	tp2HdrLen     = 32 // TPACKET_ALIGN(sizeof(struct tpacket2_hdr)): the sockaddr_ll follows

	// struct sockaddr_ll, right after the tpacket2_hdr.
	sllProtocolOff = 2 // sll_protocol, network byte order
	sllIfIndexOff  = 4
	sllHatypeOff   = 8
	sllPkttypeOff  = 10
	sllLen         = 20
)

// Ring geometry. The ring is ringBlocks blocks of one page, so that it
// never needs contiguous pages; each block holds as many frames as fit,
// from its start. Frames are as small as the longest knock candidate
// allows, so that a flood touches as few pages as possible (a frame of
// 512 bytes instead of 336 costs about 50 ns more to read, in TLB and
// cache misses). The ring takes 4 MiB, 12288 or 8192 frames: knock floods
// are expected, and a full ring drops knocks.
const (
	ringBlockSize = 1 << 12
	ringBlocks    = 1024
	// cookedFrameSize fits a frame of ModeNetwork: its headers (the
	// kernel puts the network header at TPACKET_ALIGN(tp2HdrLen+sllLen+16)
	// = 80) and the longest candidate, an IPv6 modern knock (226 bytes).
	cookedFrameSize = 336
	// rawFrameSize fits a frame of ModeRaw: the same behind a link header
	// of up to 128 bytes (the network header then lies at
	// TPACKET_ALIGN(tp2HdrLen+sllLen+128) = 192).
	rawFrameSize = 512
)

// ringGeometry is the shape of a TPACKET_V2 ring.
type ringGeometry struct {
	frameSize int
	perBlock  int // frames in a block
	frames    int
}

func newRingGeometry(frameSize int) ringGeometry {
	per := ringBlockSize / frameSize
	return ringGeometry{frameSize: frameSize, perBlock: per, frames: per * ringBlocks}
}

// offset returns where frame i starts in the mapping.
func (g ringGeometry) offset(i int) int {
	return i/g.perBlock*ringBlockSize + i%g.perBlock*g.frameSize
}

// ringCursor is a frame of a ring: its index, its offset in the mapping,
// and its index in its block. The zero value is the first frame.
type ringCursor struct{ i, off, slot int }

// advance moves c to the next frame, after the last one to the first.
func (g ringGeometry) advance(c *ringCursor) {
	c.i++
	c.slot++
	c.off += g.frameSize
	if c.slot == g.perBlock {
		c.slot = 0
		c.off += ringBlockSize - g.perBlock*g.frameSize
	}
	if c.i == g.frames {
		*c = ringCursor{}
	}
}

// ringFrame is one frame of the ring, as the kernel describes it.
type ringFrame struct {
	// data is what was captured, from the link header (SOCK_RAW) or the
	// network header (SOCK_DGRAM). It aliases the ring.
	data    []byte
	wireLen uint32 // tp_len: the frame's length on the wire
	status  uint32 // tp_status: TP_STATUS_* bits
	vlanTCI uint32 // valid with tpStatusVLANValid
	ifIndex int32
	proto   uint16 // EtherType, host order
	hatype  uint16 // ARPHRD type of the device
	pktType uint8
}

// parseFrame fills f from fr, one frame slot of the ring handed to user
// space. It trusts nothing in the slot: it reports false, and leaves f
// alone, when the header would place the data outside the slot. It does
// not allocate.
func parseFrame(fr []byte, f *ringFrame) bool {
	if len(fr) < tp2HdrLen+sllLen {
		return false
	}
	snap := int(binary.NativeEndian.Uint32(fr[tp2SnaplenOff:]))
	mac := int(binary.NativeEndian.Uint16(fr[tp2MacOff:]))
	if mac < tp2HdrLen+sllLen || mac > len(fr) || snap > len(fr)-mac {
		return false
	}
	sll := fr[tp2HdrLen:]
	*f = ringFrame{
		data:    fr[mac : mac+snap : mac+snap],
		wireLen: binary.NativeEndian.Uint32(fr[tp2LenOff:]),
		status:  binary.NativeEndian.Uint32(fr[tp2StatusOff:]),
		vlanTCI: uint32(binary.NativeEndian.Uint16(fr[tp2VlanTCIOff:])),
		ifIndex: int32(binary.NativeEndian.Uint32(sll[sllIfIndexOff:])),
		proto:   binary.BigEndian.Uint16(sll[sllProtocolOff:]),
		hatype:  binary.NativeEndian.Uint16(sll[sllHatypeOff:]),
		pktType: sll[sllPkttypeOff],
	}
	return true
}
