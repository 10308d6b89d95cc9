package capture

import "encoding/binary"

// Layout of a TPACKET_V3 receive ring (linux/if_packet.h). The ring is a
// sequence of blocks; the kernel fills one block at a time with frames and
// hands it to user space (block_status TP_STATUS_USER) when it is full or
// its retire timeout expires; user space walks the block's frames and hands
// it back (TP_STATUS_KERNEL). Fields are in host byte order.
const (
	// struct tpacket_block_desc with its tpacket_hdr_v1.
	blockStatusOff = 8  // block_status
	blockNumOff    = 12 // num_pkts
	blockFirstOff  = 16 // offset_to_first_pkt
	blockDescLen   = 48 // what the kernel reserves before the first frame

	// struct tpacket3_hdr.
	tp3NextOff    = 0  // tp_next_offset
	tp3SnaplenOff = 12 // tp_snaplen
	tp3LenOff     = 16 // tp_len
	tp3StatusOff  = 20 // tp_status
	tp3MacOff     = 24 // tp_mac
	tp3VlanTCIOff = 32 // hv1.tp_vlan_tci
	tp3HdrLen     = 48 // TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): the sockaddr_ll follows

	// struct sockaddr_ll, right after the tpacket3_hdr.
	sllProtocolOff = 2 // sll_protocol, network byte order
	sllIfIndexOff  = 4
	sllHatypeOff   = 8
	sllPkttypeOff  = 10
	sllLen         = 20
)

// ringFrame is one frame of a block, as the kernel describes it.
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

// blockWalker walks the frames of one block handed to user space. It
// trusts nothing in the block: a frame that would reach outside it ends the
// walk. It does not allocate.
type blockWalker struct {
	blk  []byte
	off  int    // offset of the next frame
	left uint32 // frames not yet walked
}

// reset starts walking blk.
func (w *blockWalker) reset(blk []byte) {
	w.blk, w.off, w.left = blk, 0, 0
	if len(blk) < blockDescLen {
		return
	}
	w.left = binary.NativeEndian.Uint32(blk[blockNumOff:])
	w.off = int(binary.NativeEndian.Uint32(blk[blockFirstOff:]))
}

// next fills f with the next frame. It reports false when the block has no
// more frames; bad is true when it stopped at a frame that does not fit in
// the block.
func (w *blockWalker) next(f *ringFrame) (ok, bad bool) {
	if w.left == 0 {
		return false, false
	}
	off := w.off
	if off < blockDescLen || off > len(w.blk)-tp3HdrLen-sllLen {
		w.left = 0
		return false, true
	}
	h := w.blk[off:]
	snap := int(binary.NativeEndian.Uint32(h[tp3SnaplenOff:]))
	mac := int(binary.NativeEndian.Uint16(h[tp3MacOff:]))
	if mac < tp3HdrLen+sllLen || snap > len(h)-mac {
		w.left = 0
		return false, true
	}
	w.left--
	if w.left > 0 {
		next := int(binary.NativeEndian.Uint32(h[tp3NextOff:]))
		if next < tp3HdrLen+sllLen || next > len(h) {
			w.left = 0 // this frame is fine; the ones after it are lost
			bad = true
		}
		w.off += next
	}
	sll := h[tp3HdrLen:]
	*f = ringFrame{
		data:    h[mac : mac+snap : mac+snap],
		wireLen: binary.NativeEndian.Uint32(h[tp3LenOff:]),
		status:  binary.NativeEndian.Uint32(h[tp3StatusOff:]),
		vlanTCI: binary.NativeEndian.Uint32(h[tp3VlanTCIOff:]),
		ifIndex: int32(binary.NativeEndian.Uint32(sll[sllIfIndexOff:])),
		proto:   binary.BigEndian.Uint16(sll[sllProtocolOff:]),
		hatype:  binary.NativeEndian.Uint16(sll[sllHatypeOff:]),
		pktType: sll[sllPkttypeOff],
	}
	return true, bad
}
